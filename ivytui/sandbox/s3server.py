"""An S3 server on loopback over TLS (moto behind Werkzeug) that pgBackRest accepts.

Two details make pgBackRest happy: every TLS connection is closed with a close_notify
(``unwrap()`` before ``close()``; without it pgBackRest fails with "TLS error unexpected eof"),
and accepted sockets get ``TCP_NODELAY`` (a request then takes ~6 ms instead of ~45 ms).

Run as a process::

    python -m ivytui.sandbox.s3server --host 127.0.0.1 --port 0 --cert C --key K \\
        --bucket hippo --ready-file F

The ready file holds ``{"pid": ..., "port": ..., "listening": true}`` once the server listens.
Signals: SIGUSR1 stops listening and drops every open connection while keeping the objects in
memory ("S3 down"); SIGUSR2 listens again on the same port ("S3 back"); SIGTERM/SIGINT exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivytui.errors import SandboxError

ACCESS_KEY = "ivytui-sandbox"
SECRET_KEY = "ivytui-sandbox-secret"
REGION = "us-east-1"

_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
_HANDLER_IDLE_TIMEOUT = 120.0
_UNWRAP_TIMEOUT = 1.0


def make_tls(dir: Path) -> tuple[Path, Path]:
    """Write (or reuse) a self-signed certificate for 127.0.0.1/localhost: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = dir / "cert.pem", dir / "key.pem"
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ivytui sandbox S3")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_tmp = key_path.with_suffix(".tmp")
    fd = os.open(key_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    os.replace(key_tmp, key_path)
    cert_tmp = cert_path.with_suffix(".tmp")
    cert_tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(cert_tmp, cert_path)
    return cert_path, key_path


# --------------------------------------------------------------------------- server process


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _make_server(host: str, listener: socket.socket, app: Any, ctx: ssl.SSLContext) -> Any:
    """A threaded Werkzeug server on an already bound socket, with clean TLS closes."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import ThreadedWSGIServer

    class Handler(MotoRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = _HANDLER_IDLE_TIMEOUT

        def setup(self) -> None:
            super().setup()
            conn = self.connection
            if isinstance(conn, ssl.SSLSocket):
                conn.do_handshake()

        def handle(self) -> None:
            with contextlib.suppress(OSError, ValueError):
                super().handle()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            return None

        def log_error(self, format: str, *args: Any) -> None:
            return None

    class Server(ThreadedWSGIServer):
        daemon_threads = True

        def __init__(self) -> None:
            self.connections: set[socket.socket] = set()
            self.connections_lock = threading.Lock()
            super().__init__(host, 0, app, handler=Handler, ssl_context=ctx, fd=listener.fileno())

        def get_request(self) -> tuple[socket.socket, Any]:
            # Accept on the plain socket; the TLS handshake happens in the handler's thread,
            # so a slow client never blocks the accept loop.
            raw, addr = socket.socket.accept(self.socket)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            with self.connections_lock:
                self.connections.add(conn)
            return conn, addr

        def shutdown_request(self, request: Any) -> None:
            with self.connections_lock:
                self.connections.discard(request)
            if isinstance(request, ssl.SSLSocket):
                # Send close_notify before the TCP close.
                with contextlib.suppress(OSError, ValueError):
                    request.settimeout(_UNWRAP_TIMEOUT)
                    request.unwrap()
            super().shutdown_request(request)

        def handle_error(self, request: Any, client_address: Any) -> None:
            return None

        def drop_connections(self) -> None:
            with self.connections_lock:
                conns = list(self.connections)
                self.connections.clear()
            for conn in conns:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(conn, socket.SHUT_RDWR)

    return Server()


def _write_ready(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def _serve(args: argparse.Namespace) -> int:
    controls = {signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, controls)

    try:
        listener = _bind(args.host, args.port)
    except OSError as exc:
        print(
            f"s3server: cannot listen on {args.host}:{args.port}: {exc.strerror}; "
            "choose another --port (0 picks a free one)",
            file=sys.stderr,
        )
        return 1
    port = int(listener.getsockname()[1])

    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from moto.s3.models import s3_backends

    for bucket in args.bucket:
        s3_backends[DEFAULT_ACCOUNT_ID]["aws"].create_bucket(bucket, REGION)
    app = DomainDispatcherApplication(create_backend_app)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(args.cert), str(args.key))

    ready = Path(args.ready_file) if args.ready_file else None

    def start(sock: socket.socket) -> tuple[Any, threading.Thread]:
        server = _make_server(args.host, sock, app, ctx)
        sock.close()  # Werkzeug duplicated the descriptor
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        thread.start()
        return server, thread

    def stop(server: Any, thread: threading.Thread) -> None:
        server.shutdown()
        thread.join()
        server.server_close()
        server.drop_connections()

    def state(listening: bool, error: str | None = None) -> None:
        if ready is not None:
            info: dict[str, Any] = {"pid": os.getpid(), "port": port, "listening": listening}
            if error:
                info["error"] = error
            _write_ready(ready, info)

    running: tuple[Any, threading.Thread] | None = start(listener)
    state(True)
    while True:
        got = signal.sigtimedwait(controls, 1.0)
        if got is None:
            if args.exit_with_parent and os.getppid() != args.exit_with_parent:
                signum: int = signal.SIGTERM  # the sandbox that started us is gone
            else:
                continue
        else:
            signum = got.si_signo
        if signum in (signal.SIGTERM, signal.SIGINT):
            if running is not None:
                stop(*running)
            return 0
        if signum == signal.SIGUSR1 and running is not None:
            stop(*running)
            running = None
            state(False)
        elif signum == signal.SIGUSR2 and running is None:
            try:
                running = start(_bind(args.host, port))
            except OSError as exc:
                message = f"cannot listen again on {args.host}:{port}: {exc.strerror}"
                print(f"s3server: {message}", file=sys.stderr)
                state(False, message)
            else:
                state(True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivytui.sandbox.s3server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument(
        "--exit-with-parent", type=int, default=0, metavar="PID", help="exit when PID is gone"
    )
    args = parser.parse_args(argv)
    return _serve(args)


# --------------------------------------------------------------------------- launcher


@dataclass
class S3ServerProcess:
    """A running ``python -m ivytui.sandbox.s3server`` child, driven from an event loop."""

    host: str
    port: int
    cert: Path
    key: Path
    buckets: list[str]
    ready_file: Path
    log_file: Path
    process: asyncio.subprocess.Process = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def is_running(self) -> bool:
        return self.process.returncode is None

    async def _signal_and_wait(self, signum: int, listening: bool, timeout: float) -> None:
        if not self.is_running():
            raise SandboxError(f"S3 server (pid {self.pid}) is not running: restart the sandbox")
        self.process.send_signal(signum)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = _read_ready(self.ready_file)
            if info is not None and info.get("listening") is listening:
                return
            if info is not None and info.get("error"):
                raise SandboxError(f"S3 server: {info['error']}")
            await asyncio.sleep(0.02)
        verb = "start" if listening else "stop"
        raise SandboxError(
            f"S3 server did not {verb} listening within {timeout:.0f} s: see {self.log_file}"
        )

    async def go_down(self, timeout: float = 10.0) -> None:
        """Stop listening and drop all connections; objects stay in memory."""
        await self._signal_and_wait(signal.SIGUSR1, False, timeout)

    async def come_back(self, timeout: float = 10.0) -> None:
        """Listen again on the same port."""
        await self._signal_and_wait(signal.SIGUSR2, True, timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        if self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def _read_ready(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _launch_files(run_dir: Path) -> tuple[Path, Path, Path, Path]:
    run_dir.mkdir(parents=True, exist_ok=True)
    cert, key = make_tls(run_dir / "tls")
    ready = run_dir / "s3server.ready.json"
    ready.unlink(missing_ok=True)
    return cert, key, ready, run_dir / "s3server.log"


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"


async def start_s3_server(
    run_dir: Path,
    *,
    buckets: Sequence[str] = ("hippo",),
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 30.0,
) -> S3ServerProcess:
    """Start the S3 server as a child process; returns once it listens.

    Its TLS files, ready file and log live in run_dir.
    """
    cert, key, ready, log_file = _launch_files(run_dir)
    args = [
        sys.executable, "-m", "ivytui.sandbox.s3server",
        "--host", host, "--port", str(port),
        "--cert", str(cert), "--key", str(key), "--ready-file", str(ready),
        "--exit-with-parent", str(os.getpid()),
    ]  # fmt: skip
    for bucket in buckets:
        args += ["--bucket", bucket]
    env = dict(os.environ)
    root = _PROJECT_ROOT
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            env=env,
            start_new_session=True,
        )
    finally:
        os.close(log_fd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = _read_ready(ready)
        if info is not None and info.get("listening") is True:
            return S3ServerProcess(
                host=host,
                port=int(info["port"]),
                cert=cert,
                key=key,
                buckets=list(buckets),
                ready_file=ready,
                log_file=log_file,
                process=process,
            )
        if process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    if process.returncode is None:
        process.kill()
        await process.wait()
    raise SandboxError(f"the S3 server did not start ({_last_line(log_file)}): see {log_file}")


if __name__ == "__main__":
    sys.exit(main())
