"""`ivytui sandbox up|down|status`: start the world in the background, inspect it, stop it by pid;
and the helpers a test uses to drive a running world's supervisor (`endpoints.py`)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ivytui.errors import SandboxError

STATE_FILE = "world.json"
PROGRESS_FILE = "progress.jsonl"
ENV_FILE = "env"


@dataclasses.dataclass(frozen=True)
class UpOptions:
    flavor: str = "ivyo"
    namespace: str = "pgo"
    cluster: str = "hippo"
    v5_name: str = ""
    storage: str = "s3"
    with_standby: bool = False
    backrest: str = "auto"
    kube_port: int = 0
    s3_port: int = 0
    load_interval: float = 0.25
    archive_timeout: int = 10


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # A zombie child of ours is not alive.
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def listening(port: int | None) -> bool:
    if not port:
        return False
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def read_state(directory: Path) -> dict[str, Any] | None:
    path = directory / STATE_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise SandboxError(
            f"{path} is unreadable ({exc}): remove it if no world runs there"
        ) from exc
    return data


def world_pids(state: dict[str, Any]) -> list[tuple[str, int]]:
    pids: list[tuple[str, int]] = []
    if state.get("supervisor_pid"):
        pids.append(("supervisor", int(state["supervisor_pid"])))
    if state.get("s3", {}).get("pid"):
        pids.append(("object storage", int(state["s3"]["pid"])))
    if state.get("v4", {}).get("pid"):
        pids.append(("v4 postgres", int(state["v4"]["pid"])))
    for name, v5 in (state.get("v5") or {}).items():
        if v5.get("pid"):
            pids.append((f"v5 postgres {name}", int(v5["pid"])))
    return pids


def world_ports(state: dict[str, Any]) -> list[tuple[str, int]]:
    ports: list[tuple[str, int]] = []
    url = state.get("kube_url") or ""
    if url:
        ports.append(("kubernetes api", int(url.rsplit(":", 1)[1])))
    if state.get("s3", {}).get("port"):
        ports.append(("object storage", int(state["s3"]["port"])))
    if state.get("v4", {}).get("port"):
        ports.append(("v4 postgres", int(state["v4"]["port"])))
    for name, v5 in (state.get("v5") or {}).items():
        if v5.get("port"):
            ports.append((f"v5 postgres {name}", int(v5["port"])))
    return ports


def running(directory: Path) -> dict[str, Any] | None:
    state = read_state(directory)
    if state is None or state.get("stopped"):
        return None
    if alive(state.get("supervisor_pid")):
        return state
    return None


def _progress_lines(path: Path) -> Iterator[dict[str, Any] | None]:
    """Yield progress records as they are written; None when nothing new arrived."""
    pos = 0
    buf = ""
    while True:
        try:
            with path.open() as fh:
                fh.seek(pos)
                chunk = fh.read()
                pos = fh.tell()
        except FileNotFoundError:
            chunk = ""
        buf += chunk
        if "\n" not in buf:
            yield None
            continue
        *lines, buf = buf.split("\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)


def spawn(
    directory: Path, opts: UpOptions, *, parent_pid: int | None = None
) -> subprocess.Popen[bytes]:
    """Start the supervisor detached from the terminal; it outlives this process."""
    directory = directory.resolve()
    if running(directory):
        state = read_state(directory) or {}
        raise SandboxError(
            f"{directory} already runs a world (supervisor pid {state.get('supervisor_pid')}): "
            f"run `ivytui sandbox down --dir {directory}` first"
        )
    if directory.exists() and not directory.is_dir():
        raise SandboxError(f"{directory} is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    for name in (PROGRESS_FILE, STATE_FILE, ENV_FILE):
        (directory / name).unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "ivytui.sandbox.daemon",
        "--dir",
        str(directory),
        "--options",
        json.dumps(dataclasses.asdict(opts)),
    ]
    if parent_pid is not None:
        cmd += ["--parent-pid", str(parent_pid)]
    with (directory / "world.out").open("ab") as out:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(
    directory: Path,
    proc: subprocess.Popen[bytes],
    *,
    on_progress: Callable[[str, float], None] | None = None,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Follow the supervisor's progress until the world is ready; clean up and raise on failure."""
    directory = directory.resolve()
    deadline = time.monotonic() + timeout
    for rec in _progress_lines(directory / PROGRESS_FILE):
        if rec is None:
            if proc.poll() is not None:
                # The supervisor exited: read what is left, then report.
                leftover = [r for r in _drain(directory / PROGRESS_FILE) if "error" in r]
                stop_pids(directory)
                if leftover:
                    raise SandboxError(leftover[-1]["error"])
                raise SandboxError(
                    f"the sandbox supervisor exited unexpectedly (see {directory / 'world.log'})"
                )
            if time.monotonic() > deadline:
                down(directory)
                raise SandboxError(
                    f"the sandbox was not ready within {timeout:.0f} s; it was stopped"
                )
            time.sleep(0.05)
            continue
        if "error" in rec:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            stop_pids(directory)
            raise SandboxError(str(rec["error"]))
        if on_progress is not None:
            on_progress(str(rec.get("stage", "")), float(rec.get("progress", 0.0)))
        if rec.get("stage") == "ready":
            state = read_state(directory)
            if state is None:
                raise SandboxError("the sandbox said it was ready but wrote no state")
            return state
    raise AssertionError("unreachable")


def _drain(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError):
        return []


def up(
    directory: Path,
    opts: UpOptions,
    *,
    on_progress: Callable[[str, float], None] | None = None,
    parent_pid: int | None = None,
    timeout: float = 300.0,
) -> dict[str, Any]:
    proc = spawn(directory, opts, parent_pid=parent_pid)
    return wait_ready(directory, proc, on_progress=on_progress, timeout=timeout)


def stop_pids(directory: Path, *, grace: float = 20.0) -> list[str]:
    """Stop every recorded process: the supervisor first (it stops its children), then any left."""
    state = read_state(directory)
    if state is None:
        return []
    stopped: list[str] = []
    pids = world_pids(state)
    sup = dict(pids).get("supervisor")
    if sup and alive(sup):
        with contextlib.suppress(ProcessLookupError):
            os.kill(sup, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while alive(sup) and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped.append(f"supervisor (pid {sup})")
    # Re-read: the supervisor records children it started while we waited.
    state = read_state(directory) or state
    for what, pid in world_pids(state):
        if what == "supervisor" or not alive(pid):
            continue
        # SIGQUIT is PostgreSQL's immediate shutdown; it makes the postmaster take its children along.
        sig = signal.SIGQUIT if "postgres" in what else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stopped.append(f"{what} (pid {pid})")
    if sup and alive(sup):
        with contextlib.suppress(ProcessLookupError):
            os.kill(sup, signal.SIGKILL)
    pg_root = state.get("pg_root")
    if pg_root:
        shutil.rmtree(pg_root, ignore_errors=True)
    state["stopped"] = True
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2))
    return stopped


def down(directory: Path) -> list[str]:
    directory = directory.resolve()
    state = read_state(directory)
    if state is None:
        raise SandboxError(f"no sandbox world in {directory} (no {STATE_FILE})")
    stopped = stop_pids(directory)
    busy = [f"{what} on 127.0.0.1:{port}" for what, port in world_ports(state) if listening(port)]
    if busy:
        raise SandboxError("still listening after down: " + ", ".join(busy))
    return stopped


def status(directory: Path) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """The recorded state and one row per part: (part, where, up/down)."""
    directory = directory.resolve()
    state = read_state(directory)
    if state is None:
        raise SandboxError(f"no sandbox world in {directory} (no {STATE_FILE})")
    rows: list[tuple[str, str, str]] = []
    pids = dict(world_pids(state))
    ports = dict(world_ports(state))
    for what in ("supervisor", "kubernetes api", "object storage", "v4 postgres"):
        pid = pids.get(what)
        port = ports.get(what)
        where = f"127.0.0.1:{port}" if port else "-"
        if pid:
            where += f" pid {pid}"
        ok = (alive(pid) if pid else True) and (listening(port) if port else True)
        if what == "kubernetes api":
            ok = ok and alive(pids.get("supervisor"))
        if what == "object storage":
            where = f"{state['s3'].get('storage', 's3')} {where}"
        rows.append((what, where, "up" if ok else "down"))
    for name, v5 in (state.get("v5") or {}).items():
        where = f"127.0.0.1:{v5.get('port')} pid {v5.get('pid')}"
        ok = alive(v5.get("pid")) and listening(v5.get("port"))
        rows.append((f"v5 postgres {name}", where, "up" if ok else "down"))
    return state, rows


# --------------------------------------------------------------------------------------------
# The supervisor's control endpoints, from outside


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def supervisor_request(
    directory: Path,
    method: str,
    path: str,
    *,
    query: dict[str, Any] | None = None,
    body: Any = None,
    timeout: float = 15,
) -> Any:
    """One request to a running world's control endpoints (``/_sandbox/...``), with a JSON
    ``body`` if given; its JSON answer, or :class:`SandboxError` with the server's words."""
    state = running(directory.resolve())
    if state is None or not state.get("kube_url"):
        raise SandboxError(f"no running world in {directory}")
    url = f"{state['kube_url']}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    if body is not None:
        data: bytes | None = json.dumps(body).encode()
    else:
        data = b"{}" if method == "POST" else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with _NO_PROXY.open(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            words = json.loads(exc.read()).get("error") or exc.reason
        except (ValueError, AttributeError):
            words = exc.reason
        raise SandboxError(f"{method} {path}: {exc.code} {words}") from None


def careless_start(directory: Path, interval: float) -> dict[str, Any]:
    """Start the careless application writer (``load.CarelessWriter``): one row every
    ``interval`` seconds as role ``app``, a new session per row; restarted at the new rate if it
    runs. Its status: ``acked``, ``errors``, ``last_commit``, ``acked_file``, ``commits_file``."""
    result: dict[str, Any] = supervisor_request(
        directory, "POST", "/_sandbox/careless/start", query={"interval": interval}
    )
    return result


def careless_stop(directory: Path) -> dict[str, Any]:
    """Stop the careless writer; its final status."""
    result: dict[str, Any] = supervisor_request(directory, "POST", "/_sandbox/careless/stop")
    return result


def careless_status(directory: Path) -> dict[str, Any]:
    result: dict[str, Any] = supervisor_request(directory, "GET", "/_sandbox/careless")
    return result


def read_acked(path: Path) -> list[int]:
    """The acknowledged ids in an acked file (one a line)."""
    try:
        return [int(x) for x in path.read_text().split() if x.isdigit()]
    except FileNotFoundError:
        return []


def read_commits(path: Path) -> list[tuple[int, float, str]]:
    """The careless writer's commits file: ``(id, acknowledged at, target)`` per row."""
    out: list[tuple[int, float, str]] = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0].isdigit():
            out.append((int(parts[0]), float(parts[1]), parts[2]))
    return out


# PostgreSQL faults (`pgfaults.py`): kill, reject, hang


def pg_fault_arm(directory: Path, **fault: Any) -> dict[str, Any]:
    """Arm a PostgreSQL fault and return it (with its ``id``) once it is in effect, e.g.
    ``pg_fault_arm(d, kind="kill", target="v4", restart_after=2)``,
    ``pg_fault_arm(d, kind="reject", target="v5", user="ivytui_monitor", seconds=5)``,
    ``pg_fault_arm(d, kind="hang", target="v4", seconds=5)``. A refused fault raises
    SandboxError with the status (400 a bad body, 409 not possible now) and the reason."""
    result: dict[str, Any] = supervisor_request(
        directory, "POST", "/_sandbox/faults/pg", body=fault, timeout=120
    )
    return result


def pg_faults(directory: Path) -> dict[str, Any]:
    """``{"armed": [...], "fired": [...]}``: each fault with its ``state``, ``outcome`` and
    ``armed_at``/``ends_at``/``ended_at`` (epoch seconds)."""
    result: dict[str, Any] = supervisor_request(directory, "GET", "/_sandbox/faults/pg")
    return result


def pg_fault_clear(directory: Path) -> dict[str, Any]:
    """Undo every PostgreSQL fault now (killed servers are started again); ``cleared`` lists
    them, beside ``armed`` (now empty) and ``fired``."""
    result: dict[str, Any] = supervisor_request(
        directory, "DELETE", "/_sandbox/faults/pg", timeout=120
    )
    return result


# --------------------------------------------------------------------------------------------
# The object store's fault stage (``/_sandbox/faults/s3``; the forms in ``s3server.py``)


def storage_fault_arm(directory: Path, **fault: Any) -> dict[str, Any]:
    """Arm one S3 fault, e.g. ``storage_fault_arm(d, fault="slowdown", method="PUT",
    suffix=".gz", count=2)``; the armed fault (``id``, ``fired``, ``active``, …). A bad form
    raises SandboxError with the server's words."""
    answer: dict[str, Any] = supervisor_request(
        directory, "POST", "/_sandbox/faults/s3/arm", body=fault
    )
    result: dict[str, Any] = answer["fault"]
    return result


def storage_fault_clear(directory: Path) -> dict[str, Any]:
    """Clear every S3 fault (requests held by a delay go on at once): ``{"cleared": N}``."""
    result: dict[str, Any] = supervisor_request(directory, "DELETE", "/_sandbox/faults/s3")
    return result


def storage_faults(directory: Path) -> list[dict[str, Any]]:
    """The S3 faults armed since the last clear, ended ones included (``active``, ``ended``,
    ``fired``, ``remaining``, ``seconds_left``)."""
    answer: dict[str, Any] = supervisor_request(directory, "GET", "/_sandbox/faults/s3")
    result: list[dict[str, Any]] = answer["faults"]
    return result


def storage_log(directory: Path, *, since: int = 0, injected_only: bool = False) -> dict[str, Any]:
    """The S3 server's request log after sequence number ``since``: ``{"entries": [...],
    "next": SEQ}``; each entry has ``seq``, ``time``, ``method``, ``op`` (``LIST`` for a
    listing), ``key``, ``status``, and ``injected`` (``{"id", "fault"}``) / ``delayed``
    (``{"ids", "seconds"}``) when the fault stage made the answer."""
    query = {"since": since, "injected": 1 if injected_only else 0}
    result: dict[str, Any] = supervisor_request(
        directory, "GET", "/_sandbox/faults/s3/log", query=query
    )
    return result
