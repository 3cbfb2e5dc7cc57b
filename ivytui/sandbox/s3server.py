"""An S3 server on loopback over TLS (moto behind Werkzeug) that pgBackRest accepts.

Two details make pgBackRest happy: every TLS connection is closed with a close_notify
(``unwrap()`` before ``close()``; without it pgBackRest fails with "TLS error unexpected eof"),
and accepted sockets get ``TCP_NODELAY`` (a request then takes ~6 ms instead of ~45 ms).

Run as a process::

    python -m ivytui.sandbox.s3server --host 127.0.0.1 --port 0 --cert C --key K \\
        --bucket hippo --ready-file F

The ready file holds ``{"pid": ..., "port": ..., "control_port": ..., "listening": true}`` once
the server listens.
Signals: SIGUSR1 stops listening and drops every open connection while keeping the objects in
memory ("S3 down"); SIGUSR2 listens again on the same port ("S3 back"); SIGTERM/SIGINT exit.

The fault stage
---------------
Faults armed on demand answer as real S3 does, each ending by itself after ``count`` matching
requests or ``duration`` seconds (whichever comes first; one of them is required). They are
armed through a small plain-HTTP control server on its own loopback port (``control_port`` in the
ready file), which no S3 client reaches as an S3 path:

- ``GET /faults`` — the armed faults (and those that ended since the last clear);
- ``POST /faults`` (a JSON fault) — arm one; ``DELETE /faults`` — clear all, waking delayed
  requests;
- ``GET /log?since=SEQ&injected=1`` — the request log (the last 2000 requests), where
  ``injected``/``delayed`` mark the answers the stage made.

A fault (JSON)::

    {"fault": "slowdown" | "internal_error" | "access_denied" | "truncate" | "corrupt" | "delay",
     "count": N, "duration": SECONDS,                # at least one; ends at the first reached
     "method": "GET" | "PUT" | "HEAD" | "LIST" | "DELETE" | "POST",   # omitted: any
     "prefix": "key prefix", "suffix": "key suffix", "copy": true,    # copy: suffix or suffix.copy
     "delay": SECONDS,                               # delay only
     "keep": BYTES,                                  # truncate: bytes kept (default half)
     "flip": N}                                      # corrupt: bytes XOR 0xFF (default 1)

``LIST`` is a bucket listing (ListObjects/ListObjectsV2); for it, ``prefix``/``suffix`` match the
listing's ``prefix`` parameter. ``slowdown`` answers 503 SlowDown, ``internal_error`` 500
InternalError, ``access_denied`` 403 AccessDenied on listings only, each with S3's XML error body
(``<Error><Code/><Message/><RequestId/><HostId/></Error>``, ``x-amz-request-id``,
``x-amz-id-2``; a HEAD gets the status and headers without a body, as from S3). The request body
is read and dropped: nothing is stored. ``truncate``/``corrupt`` spoil GETs answered 200 (a
matching GET answered otherwise, e.g. 404 or a 206 range, passes unchanged but still counts):
they act as a proxy in front of S3 that rewrites the body and fixes
up that answer's ``Content-Length`` and ``ETag`` (the MD5 of the bytes sent, checksum headers
dropped), so the answer is self-consistent and only a content check (pgBackRest's info checksum,
a comparison with the listing's ETag or a HEAD) tells; the stored object, HEAD and listings stay
intact. ``delay`` holds matching requests before S3 sees them (delays of several faults add up).
When several faults match, every matching delay applies and the first armed of the others
answers; a matching request counts against each fault that acted on it. With nothing armed, a
request costs one list check besides its entry in the request log.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import http.server
import ipaddress
import json
import os
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections import deque
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


# --------------------------------------------------------------------------- the fault stage

FAULT_KINDS = ("slowdown", "internal_error", "access_denied", "truncate", "corrupt", "delay")
FAULT_METHODS = ("GET", "PUT", "HEAD", "LIST", "DELETE", "POST")
_FAULT_FIELDS = frozenset(
    {"fault", "count", "duration", "method", "prefix", "suffix", "copy", "delay", "keep", "flip"}
)
# (status line, S3 error code, S3's message) of the error answers.
_ERRORS: dict[str, tuple[str, str, str]] = {
    "slowdown": ("503 Slow Down", "SlowDown", "Please reduce your request rate."),
    "internal_error": (
        "500 Internal Server Error",
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
    "access_denied": ("403 Forbidden", "AccessDenied", "Access Denied"),
}
# Query parameters of a bucket listing; any other makes a bucket GET a subresource request.
_LIST_PARAMS = frozenset(
    {
        "list-type", "prefix", "delimiter", "marker", "max-keys", "encoding-type",
        "continuation-token", "fetch-owner", "start-after", "x-id",
    }
)  # fmt: skip
_LOG_SIZE = 2000
_ENDED_KEPT = 200
_MAX_DURATION = 86400.0
_MAX_DELAY = 600.0


class FaultSpecError(ValueError):
    """A fault the stage cannot arm; the words say what to change."""


@dataclass
class Fault:
    id: str
    fault: str
    method: str | None
    prefix: str
    suffix: str
    copy: bool
    count: int | None
    duration: float | None
    delay: float
    keep: int | None
    flip: int
    armed_at: float
    armed_mono: float
    fired: int = 0
    ended: str | None = None  # "count" or "duration"

    def expired(self, now: float) -> bool:
        return self.duration is not None and now >= self.armed_mono + self.duration

    def matches(self, op: str, key: str) -> bool:
        if self.method is not None and op != self.method:
            return False
        if self.prefix and not key.startswith(self.prefix):
            return False
        if self.suffix and not (
            key.endswith(self.suffix) or (self.copy and key.endswith(self.suffix + ".copy"))
        ):
            return False
        return True

    def describe(self, now: float) -> dict[str, Any]:
        info: dict[str, Any] = {
            "id": self.id,
            "fault": self.fault,
            "method": self.method,
            "prefix": self.prefix,
            "suffix": self.suffix,
            "copy": self.copy,
            "count": self.count,
            "duration": self.duration,
            "armed_at": self.armed_at,
            "fired": self.fired,
            "active": self.ended is None,
            "ended": self.ended,
            "remaining": None if self.count is None else max(0, self.count - self.fired),
            "seconds_left": None
            if self.duration is None or self.ended is not None
            else max(0.0, round(self.armed_mono + self.duration - now, 3)),
        }
        if self.fault == "delay":
            info["delay"] = self.delay
        if self.fault == "truncate":
            info["keep"] = self.keep
        if self.fault == "corrupt":
            info["flip"] = self.flip
        return info


def _number(spec: dict[str, Any], name: str, *, low: float, high: float) -> float | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise FaultSpecError(f"{name}={value!r}: give a number of seconds from {low:g} to {high:g}")
    return float(value)


def _integer(spec: dict[str, Any], name: str, *, low: int) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise FaultSpecError(f"{name}={value!r}: give a whole number, at least {low}")
    return value


def parse_fault(spec: Any, *, id: str, now: float, mono: float) -> Fault:
    """Check one fault's JSON form; a FaultSpecError says what is wrong."""
    if not isinstance(spec, dict):
        raise FaultSpecError('give a JSON object, e.g. {"fault": "slowdown", "count": 1}')
    unknown = sorted(set(spec) - _FAULT_FIELDS)
    if unknown:
        raise FaultSpecError(
            f"unknown field(s) {', '.join(unknown)}: use {', '.join(sorted(_FAULT_FIELDS))}"
        )
    kind = spec.get("fault")
    if kind not in FAULT_KINDS:
        raise FaultSpecError(f"fault={kind!r}: use one of {', '.join(FAULT_KINDS)}")
    count = _integer(spec, "count", low=1)
    duration = _number(spec, "duration", low=0.001, high=_MAX_DURATION)
    if count is None and duration is None:
        raise FaultSpecError("give count (requests) or duration (seconds), or both: a fault ends")
    method = spec.get("method")
    if method is not None:
        if not isinstance(method, str) or method.upper() not in FAULT_METHODS:
            raise FaultSpecError(f"method={method!r}: use one of {', '.join(FAULT_METHODS)}")
        method = method.upper()
    only = {"access_denied": "LIST", "truncate": "GET", "corrupt": "GET"}.get(kind)
    if only is not None:
        if method not in (None, only):
            raise FaultSpecError(f"{kind} applies to {only} requests only")
        method = only
    prefix, suffix = spec.get("prefix", ""), spec.get("suffix", "")
    for name, text in (("prefix", prefix), ("suffix", suffix)):
        if not isinstance(text, str):
            raise FaultSpecError(f"{name}={text!r}: give a string")
    copy = spec.get("copy", False)
    if not isinstance(copy, bool):
        raise FaultSpecError(f"copy={copy!r}: give true or false")
    if copy and not suffix:
        raise FaultSpecError("copy=true also matches SUFFIX.copy: give a suffix")
    delay = _number(spec, "delay", low=0.001, high=_MAX_DELAY)
    if (kind == "delay") != (delay is not None):
        raise FaultSpecError(
            "a delay fault needs delay (seconds)"
            if kind == "delay"
            else "delay is for delay faults"
        )
    keep = _integer(spec, "keep", low=0)
    if keep is not None and kind != "truncate":
        raise FaultSpecError("keep is for truncate faults")
    flip = _integer(spec, "flip", low=1)
    if flip is not None and kind != "corrupt":
        raise FaultSpecError("flip is for corrupt faults")
    return Fault(
        id=id,
        fault=kind,
        method=method,
        prefix=prefix,
        suffix=suffix,
        copy=copy,
        count=count,
        duration=duration,
        delay=delay or 0.0,
        keep=keep,
        flip=flip or 1,
        armed_at=now,
        armed_mono=mono,
    )


class FaultStage:
    """The armed faults and the request log, shared by the request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []  # in arming order, ended ones included
        self._live: list[Fault] = []  # read without the lock: empty means nothing to do
        self._next_id = 1
        self._cleared = threading.Event()
        self._log: deque[dict[str, Any]] = deque(maxlen=_LOG_SIZE)
        self._log_seq = 0

    @property
    def armed(self) -> bool:
        return bool(self._live)

    def arm(self, spec: Any) -> dict[str, Any]:
        with self._lock:
            fault = parse_fault(
                spec, id=f"f{self._next_id}", now=time.time(), mono=time.monotonic()
            )
            self._next_id += 1
            self._faults.append(fault)
            self._refresh(time.monotonic())
            return fault.describe(time.monotonic())

    def clear(self) -> int:
        """Drop every fault; requests held by a delay go on at once."""
        with self._lock:
            dropped = len(self._live)
            self._faults = []
            self._live = []
            self._cleared.set()
            self._cleared = threading.Event()
        return dropped

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            now = time.monotonic()
            self._refresh(now)
            return [f.describe(now) for f in self._faults]

    def _refresh(self, now: float) -> None:
        for f in self._live:
            if f.ended is None and f.expired(now):
                f.ended = "duration"
        self._live = [f for f in self._faults if f.ended is None]
        ended = [f for f in self._faults if f.ended is not None]
        if len(ended) > _ENDED_KEPT:
            gone = {id(f) for f in ended[: len(ended) - _ENDED_KEPT]}
            self._faults = [f for f in self._faults if id(f) not in gone]

    def take(self, op: str, key: str) -> tuple[list[Fault], Fault | None, threading.Event]:
        """The delays and the answering fault for one request; each counts the request."""
        delays: list[Fault] = []
        action: Fault | None = None
        with self._lock:
            now = time.monotonic()
            changed = False
            for f in self._live:
                if f.ended is not None:
                    continue
                if f.expired(now):
                    f.ended, changed = "duration", True
                    continue
                if not f.matches(op, key):
                    continue
                if f.fault == "delay":
                    delays.append(f)
                elif action is None:
                    action = f
                else:
                    continue
                f.fired += 1
                if f.count is not None and f.fired >= f.count:
                    f.ended, changed = "count", True
            if changed:
                self._refresh(now)
            return delays, action, self._cleared

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log_seq += 1
            entry["seq"] = self._log_seq
            self._log.append(entry)
        if entry.get("injected") or entry.get("delayed"):
            words = []
            if entry.get("delayed"):
                d = entry["delayed"]
                words.append(f"delayed {d['seconds']:g} s ({', '.join(d['ids'])})")
            if entry.get("injected"):
                i = entry["injected"]
                what = i.get("code") or i["fault"]
                words.append(f"injected {entry['status']} {what} ({i['id']})")
            print(
                f"s3server: {' and '.join(words)}: {entry['op']} {entry['key']!r}",
                file=sys.stderr,
                flush=True,
            )

    def log(self, since: int = 0, injected_only: bool = False) -> dict[str, Any]:
        with self._lock:
            entries = [
                dict(e)
                for e in self._log
                if e["seq"] > since and (not injected_only or e["injected"] or e["delayed"])
            ]
            return {"entries": entries, "next": self._log_seq}


def _classify(environ: dict[str, Any], buckets: frozenset[str]) -> tuple[str, str]:
    """(operation, key) of an S3 request: LIST for a bucket listing (key: its prefix)."""
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    raw = str(environ.get("PATH_INFO", ""))
    try:
        path = raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        path = raw
    host = str(environ.get("HTTP_HOST", "")).split(":", 1)[0]
    label = host.split(".", 1)[0]
    if label in buckets and "." in host:  # virtual-hosted style
        key = path.lstrip("/")
    else:
        key = path.lstrip("/").partition("/")[2]
    if not key and method == "GET":
        query = urllib.parse.parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
        if not set(query) - _LIST_PARAMS:
            return "LIST", query.get("prefix", [""])[0]
    return method, key


def _drain(environ: dict[str, Any]) -> None:
    """Read the request body we do not use, so the connection stays in step."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    with contextlib.suppress(OSError, ValueError):
        if length > 0:
            while length > 0:
                chunk = stream.read(min(length, 1 << 16))
                if not chunk:
                    break
                length -= len(chunk)
        elif environ.get("wsgi.input_terminated"):
            while stream.read(1 << 16):
                pass


def _error_answer(kind: str, method: str, key: str) -> tuple[str, list[tuple[str, str]], bytes]:
    status, code, message = _ERRORS[kind]
    request_id = secrets.token_hex(8).upper()
    host_id = base64.b64encode(secrets.token_bytes(56)).decode()
    headers = [
        ("x-amz-request-id", request_id),
        ("x-amz-id-2", host_id),
        ("Server", "AmazonS3"),
    ]
    if method == "HEAD":
        # S3 answers a failed HEAD with the status and headers only.
        return status, [*headers, ("Content-Length", "0")], b""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>{host_id}</HostId></Error>"
    ).encode()
    headers += [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    return status, headers, body


def _spoil(fault: Fault, body: bytes) -> bytes:
    if not body:
        return body
    if fault.fault == "truncate":
        keep = len(body) // 2 if fault.keep is None else fault.keep
        return body[: min(keep, len(body) - 1)]
    # ``flip`` bytes spread evenly over the body, each XOR 0xFF (all of them if it is shorter).
    out = bytearray(body)
    n = min(fault.flip, len(out))
    for i in {(len(out) * (j + 1)) // (n + 1) for j in range(n)} if n < len(out) else range(n):
        out[i] ^= 0xFF
    return bytes(out)


class FaultingApp:
    """WSGI middleware in front of moto: the request log, and the armed faults."""

    def __init__(self, app: Any, stage: FaultStage, buckets: Sequence[str]) -> None:
        self.app = app
        self.stage = stage
        self.buckets = frozenset(buckets)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        op, key = _classify(environ, self.buckets)
        entry: dict[str, Any] = {
            "time": time.time(),
            "method": environ.get("REQUEST_METHOD"),
            "op": op,
            "key": key,
            "status": None,
            "injected": None,
            "delayed": None,
        }
        if not self.stage.armed:
            return self._pass(environ, start_response, entry)
        delays, action, cleared = self.stage.take(op, key)
        if delays:
            seconds = sum(f.delay for f in delays)
            entry["delayed"] = {"ids": [f.id for f in delays], "seconds": seconds}
            cleared.wait(seconds)
        if action is None:
            return self._pass(environ, start_response, entry)
        if action.fault in _ERRORS:
            _drain(environ)
            status, headers, body = _error_answer(action.fault, op if op != "LIST" else "GET", key)
            entry["status"] = int(status[:3])
            entry["injected"] = {
                "id": action.id,
                "fault": action.fault,
                "code": _ERRORS[action.fault][1],
            }
            self.stage.record(entry)
            start_response(status, headers)
            return [body]
        return self._spoiled(environ, start_response, entry, action)

    def _pass(self, environ: dict[str, Any], start_response: Any, entry: dict[str, Any]) -> Any:
        def seen(status: str, headers: Any, exc_info: Any = None) -> Any:
            entry["status"] = int(status[:3])
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, seen)
        finally:
            self.stage.record(entry)

    def _spoiled(
        self, environ: dict[str, Any], start_response: Any, entry: dict[str, Any], fault: Fault
    ) -> Any:
        got: list[Any] = []

        def hold(status: str, headers: Any, exc_info: Any = None) -> Any:
            got[:] = [status, list(headers)]
            return lambda data: None

        result = self.app(environ, hold)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = got
        entry["status"] = int(status[:3])
        if entry["status"] == 200 and body:
            body = _spoil(fault, body)
            drop = {"content-length", "etag", "content-md5"}
            headers = [
                (k, v)
                for k, v in headers
                if k.lower() not in drop and not k.lower().startswith("x-amz-checksum")
            ]
            headers += [
                ("Content-Length", str(len(body))),
                ("ETag", f'"{hashlib.md5(body).hexdigest()}"'),
            ]
            entry["injected"] = {"id": fault.id, "fault": fault.fault}
        self.stage.record(entry)
        start_response(status, headers)
        return [body]


def _start_control(host: str, stage: FaultStage) -> http.server.ThreadingHTTPServer:
    """The stage's control server (plain HTTP, its own port); serving in a daemon thread."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _answer(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self) -> tuple[str, dict[str, list[str]]]:
            url = urllib.parse.urlsplit(self.path)
            return url.path.rstrip("/"), urllib.parse.parse_qs(url.query)

        def do_GET(self) -> None:
            path, query = self._route()
            if path == "/faults":
                self._answer(200, {"faults": stage.describe()})
            elif path == "/log":
                try:
                    since = int(query.get("since", ["0"])[0])
                except ValueError:
                    self._answer(400, {"error": "since: give a sequence number"})
                    return
                injected = query.get("injected", ["0"])[0].lower() in ("1", "true", "yes")
                self._answer(200, stage.log(since, injected))
            else:
                self._answer(404, {"error": f"no {path}: use /faults or /log"})

        def do_POST(self) -> None:
            path, _ = self._route()
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            if path != "/faults":
                self._answer(404, {"error": f"no {path}: POST /faults"})
                return
            try:
                spec = json.loads(raw or b"null")
                fault = stage.arm(spec)
            except ValueError as exc:  # FaultSpecError, or JSON that does not parse
                self._answer(400, {"error": str(exc)})
                return
            self._answer(201, {"fault": fault})

        def do_DELETE(self) -> None:
            path, _ = self._route()
            if path != "/faults":
                self._answer(404, {"error": f"no {path}: DELETE /faults"})
                return
            self._answer(200, {"cleared": stage.clear()})

    server = http.server.ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    ).start()
    return server


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
    stage = FaultStage()
    app = FaultingApp(DomainDispatcherApplication(create_backend_app), stage, args.bucket)
    control = _start_control(args.host, stage)
    control_port = int(control.server_address[1])

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
            info: dict[str, Any] = {
                "pid": os.getpid(),
                "port": port,
                "control_port": control_port,
                "listening": listening,
            }
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
    control_port: int = 0  # the fault stage's control server (plain HTTP on host)

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
                control_port=int(info.get("control_port") or 0),
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
