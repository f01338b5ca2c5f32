"""``sovren-db metrics serve``: /metrics over HTTP (prometheus_client), collections in the background."""

from __future__ import annotations

import errno
import signal
import threading
from typing import TYPE_CHECKING

from prometheus_client import start_http_server

from ..core.errors import SovrenError
from ..doctor import load_thresholds
from .exporter import Exporter, Scheduler

if TYPE_CHECKING:
    from ..core.config import Settings

DEFAULT_PORT = 9847
DEFAULT_INTERVAL = 15.0
DEFAULT_EXPENSIVE_INTERVAL = 60.0


class PortUnavailable(SovrenError):
    """The address to serve on cannot be bound."""


def serve(settings: "Settings", *, bind: str = "127.0.0.1", port: int = DEFAULT_PORT,
          interval: float = DEFAULT_INTERVAL, expensive_interval: float = DEFAULT_EXPENSIVE_INTERVAL,
          stop: threading.Event | None = None, on_ready=None) -> None:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT when run from the command line)."""
    exporter = Exporter(settings, load_thresholds(settings.root))
    try:
        server, thread = start_http_server(port, bind, exporter.registry())
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortUnavailable(f"Cannot serve metrics: port {port} on {bind} is already in use; "
                                  "choose another with --port.") from None
        raise PortUnavailable(f"Cannot serve metrics on {bind}:{port}: {exc.strerror or exc}.") from None
    exporter.isolate()
    scheduler = Scheduler(exporter, interval, expensive_interval)
    scheduler.start()
    stop = stop or _stop_on_signals()
    if on_ready is not None:
        on_ready(server.server_address[1])
    try:
        stop.wait()
    finally:
        scheduler.stop()
        exporter.close()
        server.shutdown()
        server.server_close()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop
