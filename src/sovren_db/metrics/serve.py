"""``sovren-db metrics serve``: /metrics over HTTP (prometheus_client), collections in the background."""

from __future__ import annotations

import errno
import signal
import threading
from typing import TYPE_CHECKING

from prometheus_client.exposition import ThreadingWSGIServer, _get_best_family, _SilentHandler, make_wsgi_app
from wsgiref.simple_server import make_server

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


class _Server(ThreadingWSGIServer):
    # prometheus_client's server keeps socketserver's listen backlog of 5: a sixth scraper connecting at
    # once had its SYN dropped and waited the kernel's 1 s retransmit (bench/doctor.py: p99 1,000 ms)
    request_queue_size = 128


def serve_registry(registry, port: int, bind: str = "127.0.0.1") -> tuple:
    """prometheus_client's WSGI app on a threading server of our own (its backlog), served from a daemon thread."""
    family, address = _get_best_family(bind, port)  # as prometheus_client does: IPv6 binds too
    server_class = type("Server", (_Server,), {"address_family": family})
    server = make_server(address, port, make_wsgi_app(registry), server_class, handler_class=_SilentHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def serve(settings: "Settings", *, bind: str = "127.0.0.1", port: int = DEFAULT_PORT,
          interval: float = DEFAULT_INTERVAL, expensive_interval: float = DEFAULT_EXPENSIVE_INTERVAL,
          stop: threading.Event | None = None, on_ready=None) -> None:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT when run from the command line)."""
    exporter = Exporter(settings, load_thresholds(settings.root))
    try:
        server, thread = serve_registry(exporter.registry(), port, bind)
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
