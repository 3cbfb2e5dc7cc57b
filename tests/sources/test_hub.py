"""The hub on the world: one full reading, bad input, pause and resume."""

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
from ivytui.errors import IvyError, KubeError
from ivytui.sources.hub import Hub, HubView, view_to_json
from tests.conftest import RunningWorld

pytestmark = pytest.mark.world


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


async def test_no_kubeconfig_at_all(
    cfg: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubeError, match="no kubeconfig: set KUBECONFIG or --kubeconfig"):
        await Hub(replace(cfg, kubeconfig="")).start()


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


def test_the_hub_module_imports_no_client_library() -> None:
    code = (
        "import sys, ivytui.sources.hub; "
        "print(' '.join(m for m in ('kubernetes_asyncio', 'aioboto3', 'botocore', 'asyncpg',"
        " 'gcloud', 'aiohttp', 'textual') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


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
