"""Certificates for loopback TLS tests, made with the ``openssl`` command line.

``make_certificates`` writes a CA and a server certificate for 127.0.0.1 and
localhost signed by it; ``expired=True`` makes one whose validity ended in 2020
(``openssl ca`` is the only openssl 3.0 command that takes explicit dates).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .local import ServerUnavailable

SAN = "subjectAltName=IP:127.0.0.1,DNS:localhost"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    if not shutil.which("openssl"):
        raise ServerUnavailable("No openssl on PATH: install it (apt-get install openssl).")
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServerUnavailable(f"openssl {args[0]} failed: {result.stderr.strip().splitlines()[-1:]}.")


def make_certificates(folder: Path, *, name: str = "server", expired: bool = False) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / f"{name}-ca.crt", folder / f"{name}-ca.key"
    cert, key, csr = folder / f"{name}.crt", folder / f"{name}.key", folder / f"{name}.csr"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name} test CA",
             "-keyout", str(ca_key), "-out", str(ca), cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-addext", SAN,
             "-keyout", str(key), "-out", str(csr), cwd=folder)
    if expired:
        _sign_with_dates(folder, name, ca, ca_key, csr, cert)
    else:
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
                 "-days", "2", "-copy_extensions", "copy", "-out", str(cert), cwd=folder)
    key.chmod(0o600)
    return Certificates(ca, cert, key)


def _sign_with_dates(folder: Path, name: str, ca: Path, ca_key: Path, csr: Path, cert: Path) -> None:
    db = folder / f"{name}-ca-db"
    db.mkdir(exist_ok=True)
    (db / "index.txt").write_text("")
    (db / "serial").write_text("01\n")
    config = folder / f"{name}-ca.cnf"
    config.write_text(f"[ca]\ndefault_ca = test\n[test]\ndir = {db}\ndatabase = $dir/index.txt\n"
                      f"serial = $dir/serial\nnew_certs_dir = $dir\ndefault_md = sha256\npolicy = any\n"
                      f"copy_extensions = copy\n[any]\ncommonName = supplied\n")
    _openssl("ca", "-batch", "-config", str(config), "-cert", str(ca), "-keyfile", str(ca_key), "-in", str(csr),
             "-out", str(cert), "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", cwd=folder)


def enable_postgres_tls(server, certs: Certificates) -> None:
    """Turn ``ssl`` on for a server started by ``start_postgres`` (a reload is enough since PostgreSQL 10)."""
    import psycopg

    data = Path(server.data_dir)
    for source, target in ((certs.cert, "server.crt"), (certs.key, "server.key")):
        shutil.copyfile(source, data / target)
        (data / target).chmod(0o600)
        if server.run_as:
            shutil.chown(data / target, server.run_as)
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET ssl = on")
        conn.execute("SELECT pg_reload_conf()")


def start_redis_tls(base: Path, certs: Certificates):
    """A redis-server listening only with TLS on a loopback port; its URL names no CA (the test adds it)."""
    from .local import Server, _pid_written, _port_open, _redis_bin, _run, _wait_for, free_port

    base.mkdir(parents=True, exist_ok=True)
    port, pidfile, log = free_port(), base / "redis.pid", base / "redis.log"
    _run([_redis_bin(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--dir", str(base),
          "--tls-cert-file", str(certs.cert), "--tls-key-file", str(certs.key), "--tls-ca-cert-file", str(certs.ca),
          "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--daemonize", "yes",
          "--pidfile", str(pidfile), "--logfile", str(log)], "redis-server (TLS)", log)
    _wait_for(lambda: _pid_written(pidfile) and _port_open(port), 20, f"redis-server (TLS) on port {port}", str(log))
    return Server("redis", f"rediss://127.0.0.1:{port}/0", port, int(pidfile.read_text().strip()), str(base),
                  log=str(log))


def start_mongod_tls(base: Path, certs: Certificates):
    """A mongod accepting only TLS (``requireTLS``) on a loopback port; its URL names no CA (the test adds it)."""
    from .local import Server, ServerUnavailable, free_port, start_forked

    binary = shutil.which("mongod")
    if not binary:
        raise ServerUnavailable("No mongod on PATH: the MongoDB TLS test needs one (MONGO_URL is not enough).")
    (base / "db").mkdir(parents=True, exist_ok=True)
    pem = base / "server.pem"   # mongod reads the certificate and its key from one file
    pem.write_text(certs.cert.read_text() + certs.key.read_text())
    pem.chmod(0o600)
    port, log, pidfile = free_port(), base / "mongod.log", base / "mongod.pid"
    pid = start_forked([binary, "--dbpath", str(base / "db"), "--port", str(port), "--bind_ip", "127.0.0.1",
                        "--tlsMode", "requireTLS", "--tlsCertificateKeyFile", str(pem), "--fork",
                        "--logpath", str(log), "--pidfilepath", str(pidfile)], "mongod (TLS)", port, log, pidfile)
    return Server("mongo", f"mongodb://127.0.0.1:{port}/sovren_ai", port, pid, str(base), log=str(log))
