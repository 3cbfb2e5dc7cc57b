"""The world's object storage: the S3 server (a child process) or the GCS emulator, on loopback
with TLS and one bucket; stopped and started again by the fault stage, keeping its data. The S3
server's armed faults (503 SlowDown, 500 InternalError, 403 AccessDenied on listings, truncated
or corrupted GETs, delays: see :mod:`ivytui.sandbox.s3server`) are driven through its control
port with :meth:`ObjectStore.s3_faults`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from ivytui.errors import SandboxError
from ivytui.sandbox import pg as pgmod
from ivytui.sandbox import s3server
from ivytui.sandbox.gcsserver import TOKEN as GCS_TOKEN
from ivytui.sandbox.gcsserver import GcsServer


class ObjectStore:
    """One bucket behind S3 (``storage="s3"``) or GCS (``"gcs"``) on 127.0.0.1."""

    def __init__(self, directory: Path, *, storage: str, bucket: str, port: int = 0) -> None:
        self.dir = directory
        self.storage = storage
        self.bucket = bucket
        self.wanted_port = port
        self.access_key = s3server.ACCESS_KEY
        self.secret_key = s3server.SECRET_KEY
        self.region = s3server.REGION
        self.ca_pem = ""
        self.port = 0
        self.control_port = 0  # the S3 server's fault stage (plain HTTP on 127.0.0.1)
        self.proc: subprocess.Popen[bytes] | None = None
        self.gcs: GcsServer | None = None

    def __repr__(self) -> str:
        # The keys are secrets: never shown.
        return f"ObjectStore({self.storage!r}, bucket={self.bucket!r}, port={self.port})"

    @property
    def is_gcs(self) -> bool:
        return self.storage == "gcs"

    @property
    def endpoint(self) -> str:
        """``host:port``, as pgBackRest and the v4 object spell it."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        if self.gcs is not None:
            return self.gcs.pid
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        if self.is_gcs:
            await self._start_gcs()
        else:
            await self._start_s3()

    async def stop(self) -> None:
        if self.gcs is not None:
            await asyncio.to_thread(self.gcs.stop)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    async def _start_s3(self) -> None:
        cert, key = s3server.make_tls(self.dir / "tls")
        self.ca_pem = cert.read_text()
        ready = self.dir / "s3.ready"
        ready.unlink(missing_ok=True)
        log_fh = (self.dir / "s3.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ivytui.sandbox.s3server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.wanted_port),
                "--cert",
                str(cert),
                "--key",
                str(key),
                "--bucket",
                self.bucket,
                "--ready-file",
                str(ready),
                "--exit-with-parent",
                str(os.getpid()),
            ],
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log_fh.close()
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.proc.poll() is not None:
                tail = (self.dir / "s3.log").read_text(errors="replace").strip().splitlines()
                raise SandboxError(
                    f"the S3 server did not start: {tail[-1] if tail else 'no output'}"
                )
            if time.monotonic() > deadline:
                raise SandboxError("the S3 server did not start within 30 s (see s3.log)")
            await asyncio.sleep(0.05)
        info = json.loads(ready.read_text())
        self.port = int(info["port"])
        self.control_port = int(info.get("control_port") or 0)

    async def _start_gcs(self) -> None:
        cert, key = s3server.make_tls(self.dir / "tls")
        self.ca_pem = cert.read_text()
        self.port = self.wanted_port or pgmod.free_port()
        self.access_key = ""
        self.secret_key = GCS_TOKEN
        self.gcs = GcsServer(
            self.dir / "gcs-data", port=self.port, cert=cert, key=key, bucket=self.bucket
        )
        await self.gcs.start()

    async def fault(self, up: bool) -> None:
        """Refuse connections (``up=False``) or serve again, keeping the data."""
        if self.gcs is not None:
            if up:
                await self.gcs.start()
            else:
                await asyncio.to_thread(self.gcs.stop)
            return
        if self.proc is None or self.proc.poll() is not None:
            raise SandboxError("the S3 server is not running")
        self.proc.send_signal(signal.SIGUSR2 if up else signal.SIGUSR1)
        ready = self.dir / "s3.ready"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(ready.read_text()).get("listening") == up:
                    return
            await asyncio.sleep(0.05)
        raise SandboxError("the S3 server did not follow the fault signal within 10 s")

    async def s3_faults(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One request to the S3 server's fault stage: ``GET|POST|DELETE /faults``,
        ``GET /log``; (HTTP status, JSON answer). It answers while S3 is stopped too."""
        if self.is_gcs:
            raise SandboxError("the fault stage serves S3 only: this world's storage is GCS")
        if self.proc is None or self.proc.poll() is not None or not self.control_port:
            raise SandboxError("the S3 server is not running")
        return await asyncio.to_thread(
            _control_call, self.control_port, method, path, body, query or {}
        )

    async def _faults_ok(
        self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None
    ) -> Any:
        status, answer = await self.s3_faults(method, path, body=body, query=query)
        if status >= 300:
            words = answer.get("error") if isinstance(answer, dict) else None
            raise SandboxError(f"S3 fault stage: {method} {path}: {status} {words or answer}")
        return answer

    async def arm_fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Arm one fault (its JSON form); the armed fault with its id."""
        answer = await self._faults_ok("POST", "/faults", spec)
        fault: dict[str, Any] = answer["fault"]
        return fault

    async def clear_faults(self) -> int:
        """Drop every fault; how many were still active."""
        answer = await self._faults_ok("DELETE", "/faults")
        return int(answer["cleared"])

    async def faults(self) -> list[dict[str, Any]]:
        answer = await self._faults_ok("GET", "/faults")
        faults: list[dict[str, Any]] = answer["faults"]
        return faults

    async def request_log(self, since: int = 0, injected_only: bool = False) -> dict[str, Any]:
        """The S3 server's request log after sequence number ``since``: ``entries``, ``next``."""
        query = {"since": str(since), "injected": "1" if injected_only else "0"}
        log: dict[str, Any] = await self._faults_ok("GET", "/log", query=query)
        return log

    async def has_key(self, key: str) -> bool:
        if self.gcs is not None:
            return await self.gcs.object_exists(key)
        import aioboto3

        session = aioboto3.Session()
        async with session.client(
            "s3",
            endpoint_url=f"https://{self.endpoint}",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            verify=False,
        ) as s3:
            try:
                await s3.head_object(Bucket=self.bucket, Key=key)
            except Exception:
                return False
        return True


def _control_call(
    port: int, method: str, path: str, body: Any, query: dict[str, str]
) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{port}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    # Loopback only: never through a proxy the environment may name.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, {"error": str(exc.reason)}
    except OSError as exc:
        raise SandboxError(f"the S3 server's fault stage does not answer: {exc}") from None
