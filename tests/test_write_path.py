"""The write path against a less cooperative world: a careless application writer, two consoles
racing, abort without proof, writes without a precondition.

Each claim is checked from outside: the emulator's request log, what the databases hold, the
journal.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ivytui.config import Config, Thresholds
from ivytui.sandbox import control
from ivytui.sources.actions import Executor, GuardRefused
from ivytui.sources.hub import Hub
from ivytui.sources.journal import Journal
from tests.conftest import RunningWorld, start_world

pytestmark = pytest.mark.world

WRITE_VERBS = ("PATCH", "PUT", "DELETE")


def requests_since(w: RunningWorld, since: int) -> tuple[int, list[dict[str, Any]]]:
    with urllib.request.urlopen(f"{w.kube_url}/_sandbox/requests?since={since}", timeout=5) as r:
        doc = json.load(r)
    return int(doc["next"]), list(doc["requests"])


def post(w: RunningWorld, path: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{w.kube_url}{path}", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as r:
        return dict(json.load(r))


def get(w: RunningWorld, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{w.kube_url}{path}", timeout=10) as r:
        return dict(json.load(r))


def v5_path(w: RunningWorld) -> str:
    flavor = str(w.state["flavor"])
    group, plural = (
        ("ivory-operator.ivorysql.org", "ivoryclusters")
        if flavor == "ivyo"
        else ("postgres-operator.crunchydata.com", "postgresclusters")
    )
    return f"/apis/{group}/v1beta1/namespaces/{w.namespace}/{plural}/{w.v5_name}"


def api_patch(w: RunningWorld, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A merge patch through the API, as another client (here: the v5 operator) would send."""
    req = urllib.request.Request(
        f"{w.kube_url}{path}",
        method="PATCH",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return dict(json.load(r))


def state(hub: Hub, number: int) -> str:
    return next(s.state for s in hub.view.steps if s.number == number)


async def until(hub: Hub, check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            steps = {s.number: (s.state, [c.text for c in s.failing]) for s in hub.view.steps}
            raise AssertionError(f"{what}: not within {timeout} s; steps: {steps}")
        await asyncio.sleep(0.3)
        await hub.refresh()


def config_for(w: RunningWorld, **extra: Any) -> Config:
    return Config(
        cluster=w.cluster,
        namespace=w.namespace,
        flavor=str(w.state["flavor"]),
        v5_name=w.v5_name,
        kubeconfig=str(w.kubeconfig),
        interval=0.5,
        thresholds=Thresholds(repo_quiet_seconds=5),
        **extra,
    )


@pytest.fixture
async def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """Start consoles (a hub and an executor each) on a world; all stopped at the end."""
    monkeypatch.setenv("IVYTUI_STATE_DIR", str(tmp_path / "state"))
    made: list[tuple[Hub, Executor]] = []

    async def start(w: RunningWorld, name: str = "a") -> tuple[Hub, Executor]:
        hub = Hub(config_for(w))
        await hub.start()
        ex = Executor(hub, journal=Journal(tmp_path / f"journal-{name}.jsonl"), wait_timeout=90)
        made.append((hub, ex))
        return hub, ex

    yield start
    for hub, ex in made:
        await ex.close()
        await hub.stop()


CARELESS = [
    pytest.param(("ivyo", 4.0), id="ivyo-every-4s"),
    pytest.param(("ivyo", 0.05), id="ivyo-20-per-s"),
    pytest.param(("pgo", 4.0), id="pgo-every-4s"),
    pytest.param(("pgo", 0.05), id="pgo-20-per-s"),
]


@pytest.fixture
def careless_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningWorld, float]]:
    flavor, interval = request.param
    directory = tmp_path_factory.mktemp(f"careless-{flavor}")
    w = start_world(directory, flavor=flavor, with_standby=True, archive_timeout=5)
    try:
        yield w, interval
    finally:
        control.down(directory)


@pytest.mark.parametrize("careless_world", CARELESS, indirect=True)
async def test_a_careless_writer_loses_no_acknowledged_row(
    careless_world: tuple[RunningWorld, float], console: Any
) -> None:
    w, interval = careless_world
    hub, ex = await console(w, "a")
    _, rival = await console(w, "b")
    post(w, f"/_sandbox/careless/start?interval={interval}")
    await until(hub, lambda: state(hub, 2) == "done", 90, "v5 caught up")
    await until(hub, lambda: get(w, "/_sandbox/careless")["acked"] >= 3, 30, "careless rows")
    await until(hub, lambda: state(hub, 3) == "ready", 60, "freeze ready")

    # The v5 operator updates the status of v5 just as the final switch is recorded on it:
    # the marks write gets 409, is read again, the marks are unchanged, and it is sent again.
    writer = ex.writer()
    real_patch = writer.merge_patch
    bumped: list[str] = []

    async def operator_bumps_status_first(res: Any, name: str, patch: Any, **kw: Any) -> Any:
        annotations = (patch.get("metadata") or {}).get("annotations") or {}
        if "targetLSN" in str(annotations) and not bumped:
            bumped.append(name)
            await asyncio.to_thread(
                api_patch, w, f"{v5_path(w)}/status", {"status": {"note": "operator resync"}}
            )
        return await real_patch(res, name, patch, **kw)

    writer.merge_patch = operator_bumps_status_first  # type: ignore[method-assign]
    mark, _ = requests_since(w, 0)
    await ex.execute(await ex.plan("freeze"))
    writer.merge_patch = real_patch  # type: ignore[method-assign]
    assert bumped and state(hub, 3) == "done"
    _, reqs = requests_since(w, mark)
    on_v5 = [r["status"] for r in reqs if r["method"] == "PATCH" and r["path"] == v5_path(w)]
    assert 409 in on_v5 and on_v5[-1] == 200, on_v5

    # Two consoles racing step 4: one patch goes out, the other is refused naming the holder.
    plans = [await ex.plan("shutdown-v4"), await rival.plan("shutdown-v4")]
    results = await asyncio.gather(
        ex.execute(plans[0]), rival.execute(plans[1]), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, GuardRefused)]
    assert len(refused) == 1, results
    assert refused[0].holder == ex.holder
    await until(hub, lambda: state(hub, 4) == "done", 60, "v4 down")

    await until(hub, lambda: state(hub, 5) == "ready", 90, "promotion ready")
    await ex.execute(await ex.plan("promote"))
    await until(hub, lambda: state(hub, 6) == "ready", 60, "grants ready")
    await ex.execute(await ex.plan("grants"))

    # Let the application write to v5 for a moment, then stop it.
    acked_before = get(w, "/_sandbox/careless")["acked"]
    await until(
        hub, lambda: get(w, "/_sandbox/careless")["acked"] > acked_before, 30, "writes on v5"
    )
    status = post(w, "/_sandbox/careless/stop")
    _, reqs = requests_since(w, mark)

    shutdowns = [r for r in reqs if r["method"] == "PATCH" and "/pgclusters/" in r["path"]]
    assert len(shutdowns) == 1, shutdowns
    writes = [  # ivytui's writes, not the test's own stand-in for the operator
        r
        for r in reqs
        if r["method"] in WRITE_VERBS and not str(r.get("user_agent")).startswith("Python-urllib")
    ]
    assert writes
    assert all(r.get("precondition") for r in writes), [
        (r["method"], r["path"]) for r in writes if not r.get("precondition")
    ]

    acked = {int(x) for x in Path(status["acked_file"]).read_text().split()}
    v5 = await asyncpg.connect(w.v5_dsn())
    try:
        present = {r["id"] for r in await v5.fetch("SELECT id FROM app_rows")}
    finally:
        await v5.close()
    missing = sorted(acked - present)
    assert len(acked) >= 4
    assert not missing, f"{len(missing)} acknowledged rows lost: {missing[:10]}"

    # The journal: every "started" has exactly one outcome.
    records = ex.journal.records() + rival.journal.records()
    started = [r["attempt"] for r in records if r["outcome"] == "started"]
    ended = [r["attempt"] for r in records if r["outcome"] != "started" and r.get("attempt")]
    assert sorted(started) == sorted(ended)


@pytest.fixture(scope="module")
def abort_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorld]:
    directory = tmp_path_factory.mktemp("abort")
    w = start_world(directory, with_standby=True, archive_timeout=5)
    try:
        yield w
    finally:
        control.down(directory)


async def _abort_refused(w: RunningWorld, ex: Executor, hub: Hub, witness: str) -> list[str]:
    """Abort, typed name and all: refused, naming ``witness``, and nothing sent."""
    mark, _ = requests_since(w, 0)
    with pytest.raises(GuardRefused) as refused:
        await ex.execute(await ex.plan("abort"), typed=w.cluster)
    _, reqs = requests_since(w, mark)
    # The driver Lease is taken before the guard; nothing else is written.
    sent = [r for r in reqs if r["method"] not in ("GET", "HEAD") and "/leases" not in r["path"]]
    assert sent == []
    assert any(witness in c for c in refused.value.checks), refused.value.checks
    return list(refused.value.checks)


async def test_abort_without_proof_that_v5_is_a_standby_is_refused(
    abort_world: RunningWorld, console: Any
) -> None:
    import os
    import signal

    w = abort_world
    hub, ex = await console(w)
    await until(hub, lambda: state(hub, 2) == "done", 90, "v5 caught up")

    # v5's database down: its database cannot witness, so v4 is not restarted.
    pid = int(w.refresh()["v5"][w.v5_name]["pid"])
    os.kill(pid, signal.SIGKILL)
    await until(hub, lambda: not hub.view.snapshot.v5db.reachable, 30, "v5 down")
    await _abort_refused(w, ex, hub, "v5's database cannot witness")

    # Promoted behind ivytui's back (kubectl): the spec says so, whatever the database.
    kubectl = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(w.kubeconfig),
        "-n",
        w.namespace,
        "patch",
        "ivoryclusters.ivory-operator.ivorysql.org",
        w.v5_name,
        "--type",
        "merge",
        "-p",
        '{"spec":{"standby":{"enabled":false}}}',
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(kubectl.communicate(), 30)
    assert kubectl.returncode == 0, err.decode()
    await until(hub, lambda: hub.view.snapshot.v5.standby_enabled is False, 30, "v5 promoted")
    await _abort_refused(w, ex, hub, "the v5 spec says promoted")
