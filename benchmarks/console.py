"""The console's numbers from issue 3, each beside its baseline or goal, in one run.

    python benchmarks/console.py [--soak 600] [--duration 60] [--quick] [--world DIR]

What it measures (every timing is taken from outside the process that is measured):

1. time to the first frame of ``ivytui`` (the real command line, run under a pty at 160×48)
   beside a bare Textual app (one ``Static``) run the same way: each run is a fresh
   interpreter, timed from the spawn until the first frame has been written to the terminal
   (the end of the first run of writes that takes the output past the terminal modes an app
   sets first, 1 KB); one unmeasured warm-up run of each first, then the median of ``--runs``;
2. time to all three panes filled on a sandbox world: same start, until the hub's view has the
   v4 cluster and database, the repo and the v5 cluster and database answered, and the v4 pane
   shows the current LSN, the storage pane the newest segment and the v5 pane the replay LSN
   (checked every 20 ms, then one more refresh so that it is painted);
3. a Kubernetes change reaching the screen: a running ``ivytui`` under a pty; a pod labelled
   ``pg-cluster=<cluster>`` is created through the API (and deleted afterwards), and the
   Pgcluster's ``status.state`` is merge-patched through the ``/status`` subresource to a
   harmless value (put back at the end); each is timed from just before the request until its
   text is in the bytes the console wrote to the terminal;
4. S3 requests per poll with 100 and with 100,000 segments: the table of
   ``benchmarks/repo_requests.py``, and how many requests a poll costs at 100,000 segments once
   the background count of the older folders is done;
5. CPU time (``/proc/PID/stat``) and bytes written to the terminal per minute while nothing
   changes (the world's write load paused, ``archive_timeout`` one hour): the 160×48 console
   of 3 and a new 80×24 one run side by side (each measured by its own pid and pty) over a
   window after ``--settle`` seconds, and again over the last window before the soak ends;
6. the resident set (``VmRSS``) of both, read when the 160×48 console is ``--soak`` seconds
   old (or when the second window ends, if that is later: the output says when).

The world is started here (``control.up``, with the standby) and stopped at the end, unless
``--world DIR`` names one that already runs (its load is paused for the idle measures and
resumed afterwards). Every ``ivytui`` started here is stopped by its pid.

Bytecode is cached in a temporary ``PYTHONPYCACHEPREFIX`` for every child, as an installed
package would have it (this machine exports ``PYTHONDONTWRITEBYTECODE``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

SIZE_WIDE = (160, 48)
SIZE_NARROW = (80, 24)
PROBE_FLAG = "--probe"


# -- the probe: runs inside the measured child ------------------------------------------------


def _probe(kind: str, until: str, out_path: str) -> None:
    """Run the bare app or the real ``ivytui`` command line, and write the moments seen."""
    record: dict[str, float | str] = {"started": time.monotonic()}

    def save() -> None:
        tmp = out_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(record, fh)
        os.replace(tmp, out_path)

    def install(app: object) -> None:
        cls = type(app)

        def painted(self: object) -> None:
            record["after_ready"] = time.monotonic()
            save()
            if until == "first":
                self.exit()  # type: ignore[attr-defined]

        def on_ready(self: object) -> None:
            record["ready"] = time.monotonic()
            self.call_after_refresh(painted, self)  # type: ignore[attr-defined]
            if until == "filled":
                self.set_interval(0.02, lambda: _check_filled(self, record, save))  # type: ignore[attr-defined]

        app.__class__ = type(cls.__name__, (cls,), {"on_ready": on_ready})

    if kind == "bare":
        from textual.app import App
        from textual.widgets import Static

        class Bare(App[None]):
            def compose(self):  # type: ignore[no-untyped-def]
                yield Static("a bare Textual app")

        app = Bare()
        install(app)
        app.run()
        return

    import ivytui.tui.app as tui_app

    make_app = tui_app.make_app

    def probed(*args, **kwargs):  # type: ignore[no-untyped-def]
        app = make_app(*args, **kwargs)
        install(app)
        return app

    tui_app.make_app = probed  # type: ignore[assignment]
    from ivytui.cli import main

    main([])


def _check_filled(app: object, record: dict[str, float | str], save: object) -> None:
    import re

    if "filled" in record or "view_filled" in record:
        return
    view = getattr(app, "view", None)
    if view is None:
        return
    s = view.snapshot
    sources = (s.v4, s.v4db, s.repo, s.v5, s.v5db)
    if not all(src.observed_at > 0 and src.error is None for src in sources):
        return
    if not (s.repo.newest_segments and s.v5db.reachable and s.v4db.reachable):
        return
    main = app.main  # type: ignore[attr-defined]
    lsn = re.compile(r"[0-9A-F]+/[0-9A-F]+")
    if not (
        lsn.search(main.v4.fields.value("lsn"))
        and re.search(r"[0-9A-F]{24}", main.repo.fields.value("newest"))
        and lsn.search(main.v5.fields.value("replay_lsn"))
    ):
        return
    record["view_filled"] = time.monotonic()

    def painted() -> None:
        record["filled"] = time.monotonic()
        save()  # type: ignore[operator]
        app.exit()  # type: ignore[attr-defined]

    app.call_after_refresh(painted)  # type: ignore[attr-defined]


if len(sys.argv) == 5 and sys.argv[1] == PROBE_FLAG:
    _probe(sys.argv[2], sys.argv[3], sys.argv[4])
    sys.exit(0)


# -- the parent: everything below runs only in the benchmark itself ---------------------------

import bisect  # noqa: E402
import contextlib  # noqa: E402
import fcntl  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import termios  # noqa: E402
import threading  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def ivytui_command() -> list[str]:
    script = Path(sys.executable).parent / "ivytui"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "ivytui"]


def say(text: str) -> None:
    print(text, flush=True)


# -- a process under a pseudo-terminal ---------------------------------------------------------


class PtyProcess:
    """A child on a pty of a given size; everything it writes is kept with the time it arrived."""

    def __init__(self, argv: list[str], env: dict[str, str], size: tuple[int, int]) -> None:
        cols, rows = size
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.master = master
        self.data = bytearray()
        self.ends: list[int] = []
        self.times: list[float] = []
        self.cond = threading.Condition()
        self.closed = False
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=str(ROOT),
            close_fds=True,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.pid = self.proc.pid
        self.reader = threading.Thread(target=self._read, name=f"pty-{self.pid}", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                chunk = b""
            now = time.monotonic()
            with self.cond:
                if not chunk:
                    self.closed = True
                    self.cond.notify_all()
                    return
                self.data += chunk
                self.ends.append(len(self.data))
                self.times.append(now)
                self.cond.notify_all()

    @property
    def size(self) -> int:
        with self.cond:
            return len(self.data)

    def wait_for(self, marker: bytes, start: int, timeout: float) -> float | None:
        """The time the bytes holding ``marker`` (after offset ``start``) arrived, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                at = self.data.find(marker, max(0, start - len(marker)))
                if at >= 0:
                    end = at + len(marker)
                    return self.times[bisect.bisect_left(self.ends, end)]
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self.cond.wait(min(left, 0.5))

    def first_burst(self, threshold: int = 1024, gap: float = 0.005) -> float | None:
        """When the first frame had been written: the end of the first run of writes (none
        more than ``gap`` apart) that takes the output past ``threshold`` bytes — past the
        few hundred bytes of terminal modes an app sends before it paints."""
        with self.cond:
            ends, times = list(self.ends), list(self.times)
        start = bisect.bisect_right(ends, threshold)
        if start >= len(ends):
            return None
        end = start
        while end + 1 < len(times) and times[end + 1] - times[end] <= gap:
            end += 1
        return times[end] - self.spawned

    def bursts(self, since: float, until: float, gap: float = 0.05) -> list[tuple[float, int]]:
        """(time, bytes) of each run of writes between two moments (``time.monotonic``)."""
        with self.cond:
            ends, times = list(self.ends), list(self.times)
        found: list[tuple[float, int]] = []
        prev_end = 0
        last = -1.0
        for end, at in zip(ends, times, strict=True):
            if since <= at < until:
                if found and at - last <= gap:
                    found[-1] = (found[-1][0], found[-1][1] + end - prev_end)
                else:
                    found.append((at, end - prev_end))
                last = at
            prev_end = end
        return found

    def text(self, start: int = 0) -> str:
        with self.cond:
            raw = bytes(self.data[start:])
        return strip_ansi(raw.decode("utf-8", "replace"))

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as fh:
            rest = fh.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK

    def status_kib(self, key: str) -> int:
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, *, quit_key: bytes | None = b"q", grace: float = 10.0) -> int | None:
        """Ask the app to quit with its key, then SIGTERM, then SIGKILL — by pid only."""
        if self.alive() and quit_key:
            with contextlib.suppress(OSError):
                os.write(self.master, quit_key)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if not self.alive():
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait)
        self.reader.join(2)
        with contextlib.suppress(OSError):
            os.close(self.master)
        return self.proc.returncode


ANSI_RE = re.compile(
    r"\x1b(?:\[[0-9;?<>=$ ]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|.)"
)


def strip_ansi(text: str) -> str:
    return ANSI_RE.sub("", text)


# -- the sandbox world ----------------------------------------------------------------------------


@dataclass
class World:
    directory: Path
    state: dict[str, Any]
    owned: bool

    @property
    def kube_url(self) -> str:
        return str(self.state["kube_url"])

    @property
    def namespace(self) -> str:
        return str(self.state["namespace"])

    @property
    def cluster(self) -> str:
        return str(self.state["cluster"])

    def env_vars(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for line in (self.directory / "env").read_text().splitlines():
            line = line.strip()
            if line.startswith("export ") and "=" in line:
                key, value = line[len("export ") :].split("=", 1)
                found[key.strip()] = value.strip().strip("'\"")
        return found

    def kube(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.kube_url + path,
            data=data,
            method=method,
            headers={"Content-Type": content_type} if data is not None else {},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def load(self, action: str) -> None:
        self.kube("POST", f"/_sandbox/load/{action}", {})


def start_world(args: argparse.Namespace) -> World:
    from ivytui.sandbox import control

    if args.world:
        directory = Path(args.world).resolve()
        state = control.running(directory)
        if state is None:
            raise SystemExit(f"no running world in {directory}")
        return World(directory, state, owned=False)
    directory = Path(tempfile.mkdtemp(prefix="ivytui-bench-world-"))
    t0 = time.monotonic()
    try:
        state = control.up(
            directory, control.UpOptions(with_standby=True, archive_timeout=3600), timeout=300
        )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    say(f"  world up in {time.monotonic() - t0:.1f} s ({directory}, archive_timeout 3600 s)")
    return World(directory, state, owned=True)


def stop_world(world: World) -> None:
    from ivytui.sandbox import control

    if not world.owned:
        return
    try:
        control.down(world.directory)
    finally:
        shutil.rmtree(world.directory, ignore_errors=True)


# -- environments for the children --------------------------------------------------------------


def child_env(pycache: Path, world: World | None) -> dict[str, str]:
    env = dict(os.environ)
    for key in list(env):
        if (
            key.startswith("TEXTUAL")
            or key
            in (
                "NO_COLOR",
                "COLUMNS",
                "LINES",
                "PYTHONDONTWRITEBYTECODE",
                "REQUESTS_CA_BUNDLE",
                "AWS_CA_BUNDLE",
                "SSL_CERT_FILE",
                "CURL_CA_BUNDLE",
                "KUBECONFIG",
            )
            or key.startswith("IVYTUI_")
        ):
            del env[key]
    env["TERM"] = "xterm-256color"
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if world is not None:
        env.update(world.env_vars())
    return env


# -- 1 and 2: fresh processes until the first frame / the panes filled --------------------------


def probe_run(
    kind: str, until: str, env: dict[str, str], workdir: Path, timeout: float
) -> dict[str, float]:
    out = workdir / f"probe-{secrets.token_hex(4)}.json"
    argv = [sys.executable, str(Path(__file__).resolve()), PROBE_FLAG, kind, until, str(out)]
    proc = PtyProcess(argv, env, SIZE_WIDE)
    wanted = "after_ready" if until == "first" else "filled"
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                record = json.loads(out.read_text())
                if wanted in record:
                    break
            if not proc.alive():
                break
            time.sleep(0.02)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.proc.wait(15)
    finally:
        proc.stop(quit_key=None, grace=0)
        out.unlink(missing_ok=True)
    if wanted not in record:
        tail = proc.text()[-600:].strip()
        raise RuntimeError(f"{kind} did not reach {wanted} within {timeout:g} s; screen: {tail!r}")
    found = {key: value - proc.spawned for key, value in record.items() if isinstance(value, float)}
    burst = proc.first_burst()
    if burst is None:
        raise RuntimeError(f"{kind} wrote no frame to the terminal")
    found["painted"] = burst
    return found


def measure_first_frame(
    runs: int, env: dict[str, str], workdir: Path
) -> dict[str, dict[str, list[float]]]:
    """Per app: ``painted`` (the first frame on the pty) and ``ready`` (the Ready event)."""
    for kind in ("bare", "ivytui"):  # warm-up: fills the bytecode cache and the page cache
        probe_run(kind, "first", env, workdir, 60)
    found: dict[str, dict[str, list[float]]] = {
        kind: {"painted": [], "ready": []} for kind in ("bare", "ivytui")
    }
    for _ in range(runs):
        for kind in ("bare", "ivytui"):
            rec = probe_run(kind, "first", env, workdir, 60)
            found[kind]["painted"].append(rec["painted"])
            found[kind]["ready"].append(rec["ready"])
    return found


def measure_filled(runs: int, env: dict[str, str], workdir: Path) -> list[dict[str, float]]:
    probe_run("ivytui", "filled", env, workdir, 60)  # warm-up: the sources' modules compiled
    return [probe_run("ivytui", "filled", env, workdir, 60) for _ in range(runs)]


# -- 3: Kubernetes changes on the screen ------------------------------------------------------------


def wait_for_data(proc: PtyProcess, world: World, timeout: float = 30) -> None:
    """Until the console shows the Pgcluster's state (its watches answered)."""
    path = f"/apis/crunchydata.com/v1/namespaces/{world.namespace}/pgclusters/{world.cluster}"
    state = str(world.kube("GET", path)["status"]["state"])
    if proc.wait_for(state.encode(), 0, timeout) is None:
        raise RuntimeError(f"the console did not show {state!r} within {timeout:g} s")


def measure_pod_changes(proc: PtyProcess, world: World, count: int) -> list[float]:
    ns, cluster = world.namespace, world.cluster
    found: list[float] = []
    for _ in range(count):
        name = f"{cluster}-b{secrets.token_hex(3)}"
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {"pg-cluster": cluster, "vendor": "crunchydata", "bench": "console"},
            },
            "spec": {"containers": [{"name": "bench", "image": "busybox"}]},
        }
        start = proc.size
        t0 = time.monotonic()
        world.kube("POST", f"/api/v1/namespaces/{ns}/pods", body)
        seen = proc.wait_for(name.encode(), start, 10)
        try:
            if seen is None:
                raise RuntimeError(f"pod {name} did not reach the screen within 10 s")
            found.append(seen - t0)
        finally:
            world.kube("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}")
        time.sleep(1.0 + secrets.randbelow(1000) / 1000)
    return found


def measure_state_changes(proc: PtyProcess, world: World, count: int) -> list[float]:
    path = (
        f"/apis/crunchydata.com/v1/namespaces/{world.namespace}/pgclusters/{world.cluster}/status"
    )
    original = world.kube("GET", path)["status"]["state"]
    found: list[float] = []
    try:
        for _ in range(count):
            marker = f"Bench-{secrets.token_hex(3)}"
            start = proc.size
            t0 = time.monotonic()
            world.kube(
                "PATCH",
                path,
                {"status": {"state": f"pgcluster {marker}"}},
                "application/merge-patch+json",
            )
            seen = proc.wait_for(marker.encode(), start, 10)
            if seen is None:
                raise RuntimeError(f"state {marker} did not reach the screen within 10 s")
            found.append(seen - t0)
            time.sleep(1.0 + secrets.randbelow(1000) / 1000)
    finally:
        world.kube("PATCH", path, {"status": {"state": original}}, "application/merge-patch+json")
    return found


# -- 5 and 6: idle cost, and memory after the soak -------------------------------------------------


@dataclass
class Reading:
    at: float
    written: int
    cpu: float


def reading(proc: PtyProcess) -> Reading:
    return Reading(time.monotonic(), proc.size, proc.cpu_seconds())


@dataclass
class Window:
    """What one console did between two readings."""

    label: str
    size: tuple[int, int]
    start: Reading
    end: Reading
    writes: list[tuple[float, int]]

    @property
    def seconds(self) -> float:
        return self.end.at - self.start.at

    @property
    def written(self) -> int:
        return self.end.written - self.start.written

    @property
    def cpu_percent(self) -> float:
        return 100 * (self.end.cpu - self.start.cpu) / self.seconds

    @property
    def bytes_per_minute(self) -> float:
        return self.written * 60 / self.seconds

    def describe(self) -> str:
        sizes = sorted(n for _, n in self.writes)
        typical = f", typical write {sizes[len(sizes) // 2]} B" if sizes else ""
        return (
            f"{self.size[0]}×{self.size[1]} {self.label}: {self.written} B and "
            f"{self.end.cpu - self.start.cpu:.2f} s CPU in {self.seconds:.1f} s = "
            f"{self.bytes_per_minute / 1000:.2f} KB/min, {self.cpu_percent:.2f} % of a core; "
            f"{len(self.writes)} screen updates{typical}"
        )


def window(label: str, proc: PtyProcess, size: tuple[int, int], start: Reading) -> Window:
    end = reading(proc)
    return Window(label, size, start, end, proc.bursts(start.at, end.at))


def sleep_until(moment: float, watch: list[tuple[PtyProcess, list[tuple[float, int]]]]) -> None:
    """Sleep until ``moment``, reading each console's resident set once a minute."""
    while True:
        left = moment - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(60.0, left))
        for proc, samples in watch:
            if not proc.alive():
                raise RuntimeError(f"the console (pid {proc.pid}) exited during the soak")
            samples.append((time.monotonic() - proc.spawned, proc.status_kib("VmRSS")))


# -- 4: S3 requests per poll ---------------------------------------------------------------------------


def run_repo_requests(sizes: list[int]) -> tuple[str, dict[int, list[int]], dict[int, int]]:
    cmd = [sys.executable, str(HERE / "repo_requests.py"), "--sizes", *map(str, sizes)]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"repo_requests.py failed: {done.stderr.strip()[-800:]}")
    table = done.stdout.rstrip("\n")
    steady: dict[int, list[int]] = {}
    naive: dict[int, int] = {}
    for line in table.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[0].isdigit():
            steady[int(cols[0])] = [int(n) for n in cols[2].split(",")]
            naive[int(cols[0])] = int(cols[4])
    return table, steady, naive


def repo_after_count(count: int) -> tuple[int, list[int]]:
    """Polls of a repo with ``count`` segments until the background count is complete, and the
    requests of the five polls after that."""
    import asyncio
    import importlib.util
    import logging

    spec = importlib.util.spec_from_file_location("repo_requests", HERE / "repo_requests.py")
    assert spec is not None and spec.loader is not None
    rr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rr)
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    from ivytui.sources.storage import RepoSource, RepoTarget

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        bucket = f"count-{count}"
        rr.fill(backend, bucket, count)
        target = RepoTarget(
            storage="s3",
            bucket=bucket,
            path="/" + rr.REPO,
            endpoint=f"http://{host}:{port}",
            region="us-east-1",
            uri_style="path",
            verify=False,
            access_key="bench",
            secret_key="bench",
        )

        async def locate() -> RepoTarget:
            return target

        async def polls() -> tuple[int, list[int]]:
            src = RepoSource(locate)  # type: ignore[arg-type]
            try:
                n = 0
                await src.poll()
                while not src.count_complete:
                    await src.poll()
                    n += 1
                after = []
                for _ in range(5):
                    await src.poll()
                    after.append(src.last_poll_requests)
                return n, after
            finally:
                await src.close()

        return asyncio.run(polls())
    finally:
        server.stop()


# -- the report ------------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values)


def fmt_s(values: list[float]) -> str:
    return " ".join(f"{v:.3f}" for v in values)


def table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("measure", "value", "baseline / goal", "met?")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=7, help="fresh starts per app for the first frame")
    ap.add_argument("--fill-runs", type=int, default=5, help="fresh starts until the panes fill")
    ap.add_argument("--changes", type=int, default=7, help="Kubernetes changes of each kind")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds before the idle window")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of each idle window")
    ap.add_argument(
        "--soak", type=float, default=600.0, help="RSS is read this long after ivytui started"
    )
    ap.add_argument("--quick", action="store_true", help="soak 60 s, idle windows of 30 s")
    ap.add_argument("--repo-sizes", type=int, nargs="+", default=[100, 100_000])
    ap.add_argument("--world", help="use this running sandbox world instead of starting one")
    args = ap.parse_args()
    if args.quick:
        args.soak = 60.0
        args.duration = 30.0
    for var in ("REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE", "SSL_CERT_FILE"):
        os.environ.pop(var, None)

    rows: list[tuple[str, str, str, str]] = []
    workdir = Path(tempfile.mkdtemp(prefix="ivytui-bench-"))
    pycache = workdir / "pycache"
    world: World | None = None
    running: list[PtyProcess] = []
    paused = False
    started = time.monotonic()
    say(
        f"ivytui console benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"soak {args.soak:g} s, idle windows {args.duration:g} s after a {args.settle:g} s "
        f"settle" + (" (--quick)" if args.quick else "") + f"; {load_average()}"
    )
    try:
        # 4 first: it needs no world, and nothing else runs beside it.
        say("\n[4] S3 requests per poll (benchmarks/repo_requests.py)")
        repo_table, steady, naive = run_repo_requests(args.repo_sizes)
        say(repo_table)
        biggest = max(args.repo_sizes)
        counted_polls, after_count = repo_after_count(biggest)
        say(
            f"  {biggest} segments: the older folders were all counted after {counted_polls} "
            f"more polls; the 5 polls after that: {','.join(map(str, after_count))} requests"
        )

        say("\n[world] a sandbox world with the v5 standby")
        world = start_world(args)
        env = child_env(pycache, world)

        w, h = SIZE_WIDE
        say(f"\n[1] time to the first frame: fresh processes under a {w}×{h} pty, from spawn")
        first = measure_first_frame(args.runs, env, workdir)
        for kind, label in (("bare", "bare Textual app"), ("ivytui", "ivytui")):
            rec = first[kind]
            say(
                f"  {label:<16} first frame s: {fmt_s(rec['painted'])}   median "
                f"{med(rec['painted']):.3f}  (Ready event: median {med(rec['ready']):.3f})"
            )
        bare, ivy = med(first["bare"]["painted"]), med(first["ivytui"]["painted"])
        ratio = ivy / bare
        say(f"  ivytui / bare = {ratio:.2f}×")

        say("\n[2] time to all three panes filled on the sandbox: fresh processes, from spawn")
        fills = measure_filled(args.fill_runs, env, workdir)
        for rec in fills:
            say(
                f"  first frame {rec['painted']:.3f} s, every source answered and shown "
                f"{rec['view_filled']:.3f} s, painted {rec['filled']:.3f} s"
            )
        filled = [r["filled"] for r in fills]
        say(f"  median {med(filled):.3f} s")

        say(f"\n[3] Kubernetes changes reaching the screen: one ivytui under a {w}×{h} pty")
        wide = PtyProcess(ivytui_command(), env, SIZE_WIDE)
        running.append(wide)
        wait_for_data(wide, world)
        time.sleep(3)
        pods = measure_pod_changes(wide, world, args.changes)
        say(f"  pod created → its name on screen, s: {fmt_s(pods)}   median {med(pods):.3f}")
        states = measure_state_changes(wide, world, args.changes)
        say(
            f"  Pgcluster status.state patched → on screen, s: {fmt_s(states)}   "
            f"median {med(states):.3f}"
        )

        say(
            f"\n[5, 6] nothing changes: write load paused; that {w}×{h} console and a new "
            f"80×24 one, side by side"
        )
        say(f"  {load_average()}")
        world.load("pause")
        paused = True
        narrow = PtyProcess(ivytui_command(), env, SIZE_NARROW)
        running.append(narrow)
        consoles = ((wide, SIZE_WIDE), (narrow, SIZE_NARROW))
        rss: dict[int, list[tuple[float, int]]] = {wide.pid: [], narrow.pid: []}
        watch = [(wide, rss[wide.pid]), (narrow, rss[narrow.pid])]
        time.sleep(args.settle)
        starts = [reading(proc) for proc, _ in consoles]
        time.sleep(args.duration)
        settled = [
            window(f"{args.settle:g} s after the pause", proc, size, start)
            for (proc, size), start in zip(consoles, starts, strict=True)
        ]
        end = max(wide.spawned + args.soak, time.monotonic() + args.duration)
        sleep_until(end - args.duration, watch)
        starts = [reading(proc) for proc, _ in consoles]
        sleep_until(end, watch)
        steady_windows = [
            window(f"last {args.duration:g} s of the soak", proc, size, start)
            for (proc, size), start in zip(consoles, starts, strict=True)
        ]
        final = {}
        for proc, _ in consoles:
            final[proc.pid] = (
                time.monotonic() - proc.spawned,
                proc.status_kib("VmRSS"),
                proc.status_kib("VmHWM"),
            )
        for proc in (wide, narrow):
            proc.stop()
            running.remove(proc)
        world.load("resume")
        paused = False
        for win in (*settled, *steady_windows):
            say("  " + win.describe())
        for proc, size in consoles:
            age, now_kib, peak_kib = final[proc.pid]
            samples = ", ".join(f"{t:.0f} s {kib / 1024:.0f}" for t, kib in rss[proc.pid])
            say(
                f"  {size[0]}×{size[1]} VmRSS {now_kib / 1024:.1f} MiB (peak {peak_kib / 1024:.1f}) "
                f"{age:.0f} s after start; MiB once a minute: {samples}"
            )

        # -- the table
        rows.append(
            (
                "first frame: ivytui vs bare Textual",
                f"{ivy:.3f} s vs {bare:.3f} s = {ratio:.2f}× (medians of {args.runs})",
                "≤ 1.5× bare",
                yes(ratio <= 1.5),
            )
        )
        rows.append(
            (
                "all three panes filled (sandbox)",
                f"{med(filled):.3f} s (median of {args.fill_runs})",
                "≤ 1.5 s",
                yes(med(filled) <= 1.5),
            )
        )
        for label, values in (("pod created", pods), ("Pgcluster state", states)):
            rows.append(
                (
                    f"K8s change on screen: {label}",
                    f"{med(values):.3f} s (median of {len(values)}, max {max(values):.3f})",
                    "≤ 0.5 s",
                    yes(med(values) <= 0.5),
                )
            )
        smallest = min(args.repo_sizes)
        small_steady = max(steady.get(smallest, [0]))
        for size in sorted(steady):
            value = ",".join(map(str, steady[size]))
            settled_value = max(steady[size])
            if size == biggest and size != smallest:
                value += f"; {max(after_count)} once counted"
                settled_value = max(after_count)
            rows.append(
                (
                    f"S3 requests/poll, {size:,} segments",
                    value,
                    f"naive {naive[size]}; same small constant",
                    yes(settled_value == small_steady),
                )
            )
        for win in (*settled, *steady_windows):
            tag = f"{win.size[0]}×{win.size[1]}, {win.label}"
            rows.append(
                (
                    f"idle CPU, {tag}",
                    f"{win.cpu_percent:.2f} % of a core",
                    "≤ 3 %",
                    yes(win.cpu_percent <= 3),
                )
            )
            rows.append(
                (
                    f"idle output, {tag}",
                    f"{win.bytes_per_minute / 1000:.2f} KB/min",
                    "≤ 10 KB/min",
                    yes(win.bytes_per_minute <= 10_000),
                )
            )
        for proc, size in consoles:
            age, now_kib, _ = final[proc.pid]
            mb = now_kib * 1024 / 1e6
            rows.append(
                (
                    f"RSS {age:.0f} s after start, {size[0]}×{size[1]}",
                    f"{mb:.1f} MB ({now_kib / 1024:.1f} MiB)",
                    "≤ 150 MB",
                    yes(mb <= 150),
                )
            )
        say(
            f"\nsummary (whole run {time.monotonic() - started:.0f} s; soak {args.soak:g} s, "
            f"idle windows {args.duration:g} s; {load_average()})"
        )
        say(table(rows))
        return 0 if all(r[3] == "yes" for r in rows) else 1
    finally:
        for proc in running:
            proc.stop()
        if world is not None:
            if paused:
                with contextlib.suppress(Exception):
                    world.load("resume")
            stop_world(world)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
