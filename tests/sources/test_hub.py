"""The hub on the world: one full reading, bad input, pause and resume; and, without the world,
what the hub remembers across polls and what it logs when a snapshot changes."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from source_helpers import wait_until

from ivytui.config import Config
from ivytui.domain.lsn import Lsn
from ivytui.domain.model import (
    PodInfo,
    RepoState,
    SegmentObject,
    V4Database,
    V4State,
    V5Database,
    V5State,
)
from ivytui.errors import IvyError, KubeError
from ivytui.sources import changes
from ivytui.sources.hub import Hub, HubView, LogEntry, view_to_json
from tests.conftest import RunningWorld

world = pytest.mark.world


@world
async def test_once_reads_every_source_and_the_json_says_so(
    world: RunningWorld, cfg: Config
) -> None:
    started = time.perf_counter()
    view = await Hub(cfg).once()
    took = time.perf_counter() - started
    print(f"\nHub.once(): {took:.2f} s")
    data = view_to_json(view)
    text = json.dumps(data)
    assert json.loads(text) == data
    assert data["ok"] is True, {k: v["error"] for k, v in data["sources"].items()}
    assert set(data["sources"]) == {"v4", "v4db", "repo", "v5", "v5db", "marks"}
    for name, entry in data["sources"].items():
        assert entry["ok"] and entry["error"] is None and entry["problem"] is None, name
    assert data["context"] == "ivytui-sandbox" and data["namespace"] == world.namespace
    assert data["sources"]["v4"]["state"] == "pgcluster Initialized"
    assert data["sources"]["v4db"]["current_lsn"].count("/") == 1
    assert data["sources"]["v5db"]["in_recovery"] is True
    assert data["sources"]["repo"]["url"] == "s3://hippo/backrestrepo/hippo-backrest-shared-repo"
    assert [s["number"] for s in data["steps"]] == list(range(8))
    assert data["steps"][0]["state"] == "done", data["steps"][0]["checks"]
    assert all({"ok", "text", "sources"} <= set(c) for s in data["steps"] for c in s["checks"])
    assert data["alarms"] == []
    assert data["lag"]["text"]
    assert view.objects["v4"]["kind"] == "Pgcluster"
    assert "[db]" in view.objects["repo/archive.info"]["text"]
    assert any(key.startswith("pod/") for key in view.objects)
    assert took < 5


@world
@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"context": "nosuch"}, "context 'nosuch' is not in the kubeconfig"),
        ({"kubeconfig": "/nonexistent/kubeconfig"}, "no kubeconfig: /nonexistent/kubeconfig"),
        ({"namespace": "nosuch"}, "namespace 'nosuch' does not exist"),
    ],
)
async def test_bad_input_is_a_clear_error(cfg: Config, changes: dict[str, Any], words: str) -> None:
    with pytest.raises(KubeError) as caught:
        await Hub(replace(cfg, **changes)).once()
    assert words in str(caught.value)
    assert isinstance(caught.value, IvyError) and caught.value.title == "kubernetes"


@world
async def test_no_kubeconfig_at_all(
    cfg: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubeError, match="no kubeconfig: set KUBECONFIG or --kubeconfig"):
        await Hub(replace(cfg, kubeconfig="")).start()


@world
async def test_an_unknown_cluster_and_a_missing_crd_are_facts(cfg: Config) -> None:
    hub = Hub(replace(cfg, cluster="nosuch", flavor="pgo"))
    logs: list[str] = []
    hub.on_log(lambda entry: logs.append(entry.text))
    view = await hub.once()
    snap = view.snapshot
    assert snap.v4.error is None and not snap.v4.exists
    assert snap.v5.error is None and snap.v5.crd_installed is False
    assert any("v4 Pgcluster nosuch not found in namespace pgo" in text for text in logs)
    assert snap.v4db.reachable is False and snap.v4db.error is None
    assert snap.v4db.unreachable_reason == "Service nosuch does not exist in namespace pgo"
    assert snap.repo.error is not None and "v4 nosuch does not exist" in snap.repo.error
    preflight = view.steps[0]
    texts = [check.text for check in preflight.checks]
    assert "v4 object nosuch not found in namespace pgo" in texts
    assert any(
        "postgresclusters.postgres-operator.crunchydata.com is not installed" in t for t in texts
    )


@world
async def test_pause_freezes_the_view_and_resume_polls_again(cfg: Config) -> None:
    hub = Hub(cfg)
    views: list[HubView] = []
    hub.on_view(views.append)
    await hub.start()
    try:
        await wait_until(lambda: hub.view.snapshot.v4db.observed_at > 0, 10, "a v4 poll")
        hub.pause()
        assert views[-1].paused
        frozen = len(views)
        seen = hub.view.snapshot.v4db.observed_at
        await asyncio.sleep(1.0)
        assert len(views) == frozen
        assert hub.view.snapshot.v4db.observed_at == seen
        hub.resume()
        await wait_until(
            lambda: hub.view.snapshot.v4db.observed_at > seen, 5, "a poll after resume"
        )
        assert not hub.view.paused
        hub.set_interval(1.5)
        assert hub.view.interval == 1.5
        # Bursts are coalesced: never more than about ten views a second.
        count = len(views)
        await asyncio.sleep(1.0)
        assert len(views) - count <= 11
    finally:
        stopping = time.perf_counter()
        await hub.stop()
        assert time.perf_counter() - stopping < 2


@world
def test_the_hub_module_imports_no_client_library() -> None:
    code = (
        "import sys, ivytui.sources.hub; "
        "print(' '.join(m for m in ('kubernetes_asyncio', 'aioboto3', 'botocore', 'asyncpg',"
        " 'gcloud', 'aiohttp', 'textual') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


@world
async def test_an_api_server_that_does_not_answer_is_a_source_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:{port}\n"
        "users:\n- name: gone\n  user: {}\n"
        "contexts:\n- name: gone\n  context: {cluster: gone, user: gone, namespace: pgo}\n"
        "current-context: gone\n"
    )
    started = time.perf_counter()
    view = await Hub(Config(kubeconfig=str(kubeconfig), source_timeout=2.0)).once()
    assert time.perf_counter() - started < 5
    data = view_to_json(view)
    assert data["ok"] is False
    words = f"the API server http://127.0.0.1:{port} does not answer (connection refused)"
    assert data["sources"]["v4"]["error"] == words
    assert data["sources"]["v5"]["error"] == words
    assert words in data["sources"]["v4db"]["error"]


# ---------------------------------------------------------------------------------------------
# Without the world


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedV5:
    """A v5 database source that answers the polls it is given, one per poll."""

    def __init__(self, clock: Clock, answers: list[V5Database]) -> None:
        self.clock = clock
        self.answers = answers

    async def poll(self) -> V5Database:
        return replace(self.answers.pop(0), observed_at=self.clock())

    async def close(self) -> None:
        return None


def replaying(lsn: str | None) -> V5Database:
    if lsn is None:
        return V5Database(reachable=False, unreachable_reason="connection refused")
    return V5Database(reachable=True, in_recovery=True, replay_lsn=Lsn.parse(lsn), timeline=1)


async def test_the_hub_remembers_when_v5_replay_last_moved() -> None:
    clock = Clock(1000.0)
    hub = Hub(Config(cluster="hippo", namespace="pgo"), clock=clock)
    script = ["0/5000000", "0/5000000", "0/6000000", "0/6000000", None, "0/6000000", "0/7000000"]
    hub._v5db = ScriptedV5(clock, [replaying(lsn) for lsn in script])  # type: ignore[assignment]
    seen: list[float | None] = []
    try:
        for _ in script:
            clock.now += 1.0
            await hub.refresh()
            seen.append(hub.view.snapshot.rates.replay_moved_at)
    finally:
        await hub.stop()
    # Not seen to move at the first poll; kept while it stands still or v5 does not answer.
    assert seen == [None, None, 1003.0, 1003.0, 1003.0, 1003.0, 1007.0]
    assert view_to_json(hub.view)["rates"]["replay_moved_at"] == 1007.0


def texts(entries: list[LogEntry]) -> list[str]:
    return [entry.text for entry in entries]


def test_a_poll_that_fails_and_recovers_is_logged_once_each() -> None:
    ok = V4Database(observed_at=10.0, reachable=True)
    failing = replace(ok, error="no answer within 5 s", stale_since=20.0)
    assert texts(changes.poll_outcome("v4db", ok, "no answer within 5 s", 20.0)) == [
        "v4's database is not answering: no answer within 5 s"
    ]
    assert changes.poll_outcome("v4db", failing, "no answer within 5 s", 25.0) == []
    back = changes.poll_outcome("v4db", failing, None, 62.0)
    assert texts(back) == ["v4's database answers again after 42 s"]
    assert back[0].source == "v4" and back[0].level == "info" and back[0].at == 62.0


def test_v4_freeze_and_timeline_changes_are_logged() -> None:
    before = V4Database(observed_at=1.0, reachable=True, read_only=False, timeline=1)
    frozen = replace(before, read_only=True)
    assert texts(changes.v4db_changes(before, frozen, 2.0)) == [
        "v4 default_transaction_read_only is now on (frozen)"
    ]
    moved = replace(frozen, timeline=2)
    [line] = changes.v4db_changes(frozen, moved, 3.0)
    assert (line.level, line.text) == ("warning", "v4 moved from timeline 1 to 2")
    gone = V4Database(observed_at=4.0, reachable=False, unreachable_reason="connection refused")
    assert texts(changes.v4db_changes(moved, gone, 4.0)) == [
        "v4's database does not answer: connection refused"
    ]
    assert changes.v4db_changes(moved, replace(moved, error="boom"), 5.0) == []


def test_new_segments_are_listed_then_summarised() -> None:
    def seg(n: int) -> SegmentObject:
        name = f"0000000100000000000000{n:02X}"
        return SegmentObject(name=name, key=name)

    before = RepoState(observed_at=1.0, url="s3://b/p", reachable=True)
    after = replace(before, newest_segments=(seg(6),), history_timelines=(2,))
    few = changes.repo_changes(
        before, after, 2.0, first=False, new_segments=[seg(5), seg(6)], count_complete=True
    )
    assert texts(few) == [
        "new segment 000000010000000000000005 (timeline 1)",
        "new segment 000000010000000000000006 (timeline 1)",
        "00000002.history appeared in the repo",
    ]
    many = changes.repo_changes(
        before,
        after,
        2.0,
        first=False,
        new_segments=[seg(n) for n in range(5, 10)],
        count_complete=True,
    )
    assert texts(many)[0] == "5 new segments, newest 000000010000000000000009"
    first = changes.repo_changes(
        RepoState(), after, 2.0, first=True, new_segments=[], count_complete=False
    )
    assert texts(first) == [
        "repo s3://b/p: no readable archive.info; newest segment 000000010000000000000006; "
        "0 segments counted so far"
    ]


def test_kubernetes_changes_name_the_pods_and_the_objects() -> None:
    pod = PodInfo(name="hippo-abc", kind="database", role="master", phase="Running", ready=True)
    v4 = V4State(
        exists=True, name="hippo", namespace="pgo", state="pgcluster Initialized", pods=(pod,)
    )
    v5 = V5State(exists=False, name="hippo", kind="IvoryCluster", crd_installed=True)
    crd = "ivoryclusters.ivory-operator.ivorysql.org"
    assert texts(changes.kube_changes(None, v4, v5, 1.0, crd_name=crd)) == [
        "v4 Pgcluster hippo is pgcluster Initialized; hippo-abc",
        "IvoryCluster hippo does not exist yet",
    ]
    down = replace(
        v4, shutdown=True, state="pgcluster Shutdown", pods=(replace(pod, deleting=True),)
    )
    assert texts(changes.kube_changes((v4, v5), down, v5, 2.0, crd_name=crd)) == [
        "v4 pod hippo-abc: master, Running, ready → master, Running, ready, terminating",
        "v4 hippo: pgcluster Initialized → pgcluster Shutdown",
        "v4 hippo: spec.shutdown is now True",
    ]
    assert texts(changes.watch_error("v5", "403 Forbidden", None, 3.0)) == [
        "v5 watch: 403 Forbidden"
    ]
    assert texts(changes.watch_error("v5", None, "403 Forbidden", 4.0)) == ["v5 watch recovered"]
    assert changes.watch_error("v5", None, None, 5.0) == []
