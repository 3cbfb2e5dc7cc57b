"""The Kubernetes source against the API emulator: true values, watches, and no writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes_asyncio import client, config
from source_helpers import sandbox_get, sandbox_post, wait_until

from ivytui.config import Config
from ivytui.domain.flavor import IVYO
from ivytui.errors import KubeError
from ivytui.sources.hub import Hub, HubView, LogEntry
from ivytui.sources.kube import KubeSource, SecretMissing
from tests.conftest import RunningWorld

pytestmark = pytest.mark.world


@pytest.fixture
async def writer(world: RunningWorld) -> AsyncIterator[client.ApiClient]:
    """An ordinary (writing) client, standing for another engineer's kubectl."""
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(world.kubeconfig), client_configuration=cfg)
    api = client.ApiClient(configuration=cfg)
    try:
        yield api
    finally:
        await api.close()


async def test_pods_and_objects_equal_what_the_api_says(
    world: RunningWorld, cfg: Config, writer: client.ApiClient
) -> None:
    kube = KubeSource(cfg, IVYO)
    await kube.connect()
    try:
        await kube.list_all()
        v4, v5 = kube.v4_state(), kube.v5_state()
        secret = await kube.read_secret(f"{world.cluster}-postgres-secret")
        with pytest.raises(SecretMissing, match="Secret nosuch does not exist in namespace pgo"):
            await kube.read_secret("nosuch")
    finally:
        await kube.close()
    core = client.CoreV1Api(writer)
    v4_pods = await core.list_namespaced_pod(world.namespace, label_selector="pg-cluster=hippo")
    v5_pods = await core.list_namespaced_pod(
        world.namespace, label_selector=f"{IVYO.cluster_label}={world.v5_name}"
    )
    assert [p.name for p in v4.pods] == sorted(p.metadata.name for p in v4_pods.items)
    assert [p.name for p in v5.pods] == sorted(p.metadata.name for p in v5_pods.items)
    custom = client.CustomObjectsApi(writer)
    pgcluster = await custom.get_namespaced_custom_object(
        "crunchydata.com", "v1", world.namespace, "pgclusters", world.cluster
    )
    assert v4.exists and v4.state == pgcluster["status"]["state"] == "pgcluster Initialized"
    assert v4.resource_version == pgcluster["metadata"]["resourceVersion"]
    assert v4.s3_bucket == pgcluster["spec"]["backrestS3Bucket"]
    assert v4.primary_pod is not None and v4.primary_pod.phase == "Running"
    assert v5.exists and v5.crd_installed is True and v5.standby_enabled is True
    assert v5.repo1_path == world.state["s3"]["repo_path"]
    assert v4.error is None and v5.error is None and v4.observed_at > 0
    assert secret == {"username": "postgres", "password": world.state["superuser_password"]}


async def test_the_client_refuses_to_write_before_anything_is_sent(
    world: RunningWorld, cfg: Config
) -> None:
    start = int((await asyncio.to_thread(sandbox_get, world, "/_sandbox/requests?since=0"))["next"])
    hub = Hub(cfg)
    await hub.start()
    try:
        await wait_until(lambda: hub.view.snapshot.v4.observed_at > 0, 10, "the v4 watch")
        await hub.refresh()
        assert hub.kube is not None
        with pytest.raises(KubeError, match=r"refused PATCH /apis/crunchydata\.com/v1/"):
            await hub.kube.write_probe()
        await asyncio.sleep(0.5)
    finally:
        await hub.stop()
    sent = (await asyncio.to_thread(sandbox_get, world, f"/_sandbox/requests?since={start}"))[
        "requests"
    ]
    assert sent, "the hub sent nothing at all"
    assert {entry["method"] for entry in sent} == {"GET"}
    assert {entry["verb"] for entry in sent} <= {"get", "list", "watch"}
    watched = {entry["path"] for entry in sent if entry["verb"] == "watch"}
    assert "/api/v1/namespaces/pgo/pods" in watched
    assert "/apis/crunchydata.com/v1/namespaces/pgo/pgclusters" in watched


async def test_a_change_reaches_on_view_at_once(
    world: RunningWorld, cfg: Config, writer: client.ApiClient
) -> None:
    hub = Hub(replace(cfg, interval=30.0))
    views: list[tuple[float, HubView]] = []
    logs: list[LogEntry] = []
    hub.on_view(lambda view: views.append((time.monotonic(), view)))
    hub.on_log(logs.append)
    custom: Any = client.CustomObjectsApi(writer)
    core: Any = client.CoreV1Api(writer)
    await hub.start()
    try:
        await wait_until(lambda: "v4" in hub.view.objects, 10, "the v4 object in the view")
        await asyncio.sleep(0.3)
        marker = str(time.time_ns())
        sent = time.monotonic()
        await custom.patch_namespaced_custom_object(
            "crunchydata.com",
            "v1",
            world.namespace,
            "pgclusters",
            world.cluster,
            {"metadata": {"labels": {"ivytui-test": marker}}},
            _content_type="application/merge-patch+json",
        )

        def labelled() -> float | None:
            for at, view in views:
                labels = view.objects.get("v4", {}).get("metadata", {}).get("labels", {})
                if labels.get("ivytui-test") == marker:
                    return at
            return None

        await wait_until(lambda: labelled() is not None, 2.0, "the label in a view")
        latency = (labelled() or 0.0) - sent
        print(f"\nwatch → on_view latency: {latency * 1000:.0f} ms")
        assert latency < 2.0

        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        reason = f"IvytuiTest{marker[-6:]}"
        await core.create_namespaced_event(
            world.namespace,
            {
                "metadata": {"generateName": f"{world.cluster}."},
                "involvedObject": {
                    "apiVersion": "crunchydata.com/v1",
                    "kind": "Pgcluster",
                    "name": world.cluster,
                    "namespace": world.namespace,
                },
                "reason": reason,
                "message": "a test event",
                "type": "Warning",
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            },
        )
        await wait_until(
            lambda: any(e.source == "events" and reason in e.text for e in logs),
            2.0,
            "the Kubernetes event in the log",
        )
        entry = next(e for e in logs if reason in e.text)
        assert entry.level == "warning"
        assert entry.text == f"Pgcluster {world.cluster}: {reason}: a test event"
    finally:
        await custom.patch_namespaced_custom_object(
            "crunchydata.com",
            "v1",
            world.namespace,
            "pgclusters",
            world.cluster,
            {"metadata": {"labels": {"ivytui-test": None}}},
            _content_type="application/merge-patch+json",
        )
        await hub.stop()


async def test_a_watch_resumes_after_the_history_is_compacted(
    world: RunningWorld, cfg: Config, writer: client.ApiClient
) -> None:
    kube = KubeSource(cfg, IVYO, on_change=lambda: None)
    await kube.start()
    custom: Any = client.CustomObjectsApi(writer)
    try:
        await wait_until(lambda: kube.v4_object() is not None, 10, "the first list")
        await asyncio.to_thread(sandbox_post, world, "/_sandbox/compact")
        marker = str(time.time_ns())
        await custom.patch_namespaced_custom_object(
            "crunchydata.com",
            "v1",
            world.namespace,
            "pgclusters",
            world.cluster,
            {"metadata": {"annotations": {"ivytui-test": marker}}},
            _content_type="application/merge-patch+json",
        )
        await wait_until(
            lambda: (
                (kube.v4_object() or {})
                .get("metadata", {})
                .get("annotations", {})
                .get("ivytui-test")
                == marker
            ),
            5,
            "the annotation after compaction",
        )
        assert kube.v4_state().error is None
    finally:
        await custom.patch_namespaced_custom_object(
            "crunchydata.com",
            "v1",
            world.namespace,
            "pgclusters",
            world.cluster,
            {"metadata": {"annotations": {"ivytui-test": None}}},
            _content_type="application/merge-patch+json",
        )
        await kube.close()
