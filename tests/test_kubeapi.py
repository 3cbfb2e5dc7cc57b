"""The Kubernetes API emulator against the real clients: kubernetes_asyncio and kubectl."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from ivytui.errors import SandboxError
from ivytui.sandbox.kubeapi import (
    BUILTIN_TYPES,
    ApiError,
    KubeAPIServer,
    KubeStore,
    apply_json_patch,
    apply_merge_patch,
    carried_precondition,
    crd_manifest,
    parse_label_selector,
    write_kubeconfig,
)

GROUP = "crunchydata.com"
PLURAL = "pgclusters"
PGC = f"{PLURAL}.{GROUP}"
CRD = "customresourcedefinitions.apiextensions.k8s.io"
NS = "pgo"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
KUBECTL = shutil.which("kubectl")


@dataclass
class Env:
    store: KubeStore
    server: KubeAPIServer
    kubeconfig: Path
    cache_dir: Path
    api: client.ApiClient

    # The generated client is typed with model classes; these tests pass plain dicts and
    # `_content_type`, which it accepts at run time, so the API objects are used untyped.
    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    @property
    def custom(self) -> Any:
        return client.CustomObjectsApi(self.api)

    @property
    def ext(self) -> Any:
        return client.ApiextensionsV1Api(self.api)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a condition no event signals; the generous limit only turns a hang into a failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not condition():
        assert loop.time() < deadline, f"still waiting for {what}"
        await asyncio.sleep(0.01)


def status_body(exc: ApiException) -> dict[str, Any]:
    assert exc.body is not None
    body: dict[str, Any] = json.loads(exc.body)
    assert body["kind"] == "Status"
    assert body["code"] == exc.status
    return body


def pod(name: str, labels: dict[str, str] | None = None, phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "database", "image": "postgres:15"}]},
        "status": {"phase": phase},
    }


def pgcluster(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Pgcluster",
        "metadata": {"name": name, "labels": {"pg-cluster": name}},
        "spec": {"clustername": name, "shutdown": False, **spec},
        "status": {"state": "ignored on create"},
    }


@pytest_asyncio.fixture(scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("kubeapi")
    store = KubeStore()
    server = KubeAPIServer(store)
    port = await server.start()
    assert server.url == f"http://127.0.0.1:{port}"
    kubeconfig = tmp / "kubeconfig"
    write_kubeconfig(kubeconfig, server.url, namespace=NS)
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    api = client.ApiClient(configuration=cfg)
    # The namespace and the v4 CRD come in through the real client, like in a real cluster.
    env = Env(store, server, kubeconfig, tmp / "kubectl-cache", api)
    await env.core.create_namespace({"metadata": {"name": NS}})
    await env.ext.create_custom_resource_definition(
        crd_manifest(GROUP, "v1", PLURAL, "Pgcluster", short_names=("pgc",))
    )
    try:
        yield env
    finally:
        await api.close()
        await server.stop()


# ---- pure helpers ------------------------------------------------------------------------------


def test_merge_patch_rfc7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3], "n": {"x": None, "y": 1}}
    assert apply_merge_patch(target, patch) == {
        "a": "z",
        "c": {"d": "e"},
        "l": [3],
        "n": {"y": 1},
    }


def test_json_patch_rfc6902() -> None:
    doc = {"a": {"b": [1, 2, 3]}, "c": "d", "x~/y": 1}
    out = apply_json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/1", "value": 9},
            {"op": "add", "path": "/a/b/-", "value": 4},
            {"op": "remove", "path": "/a/b/0"},
            {"op": "replace", "path": "/c", "value": "e"},
            {"op": "copy", "from": "/c", "path": "/f"},
            {"op": "move", "from": "/f", "path": "/g"},
            {"op": "test", "path": "/x~0~1y", "value": 1},
            {"op": "add", "path": "/n", "value": None},
        ],
    )
    assert out == {"a": {"b": [9, 2, 3, 4]}, "c": "e", "g": "e", "x~/y": 1, "n": None}
    assert doc["c"] == "d", "the input is not modified"
    for bad in (
        [{"op": "remove", "path": "/nope"}],
        [{"op": "replace", "path": "/nope", "value": 1}],
        [{"op": "test", "path": "/c", "value": "other"}],
        [{"op": "add", "path": "/a/b/7", "value": 1}],
        [{"op": "jump", "path": "/c"}],
        [{"op": "move", "from": "/a", "path": "/a/b/x"}],
    ):
        with pytest.raises(ApiError) as err:
            apply_json_patch(doc, bad)
        assert err.value.code == 422 and err.value.reason == "Invalid"
    with pytest.raises(ApiError) as err:
        apply_json_patch(doc, {"op": "add"})
    assert err.value.code == 400 and err.value.reason == "BadRequest"


def test_label_selector_parsing() -> None:
    labels = {"app": "db", "role": "master", "tier": "3"}

    def match(sel: str) -> bool:
        return all(r.matches(labels) for r in parse_label_selector(sel))

    assert match("app=db") and match("app==db") and match("app!=web")
    assert match("role in (master, replica)") and not match("role notin (master)")
    assert match("app,!missing") and not match("!app")
    assert match("tier>2") and not match("tier<3")
    assert match("app=db,role in (master),missing notin (x)")
    assert not match("app=")
    for bad in ("=db", "app in master", "a b", "tier>x", "app=Bad Value"):
        with pytest.raises(ApiError) as err:
            parse_label_selector(bad)
        assert err.value.code == 400


def test_builtin_types_and_crd_manifest() -> None:
    keys = {t.key for t in BUILTIN_TYPES}
    assert {
        "namespaces",
        "pods",
        "services",
        "secrets",
        "configmaps",
        "events",
        "deployments.apps",
        "leases.coordination.k8s.io",
        CRD,
    } <= keys
    crd_type = next(t for t in BUILTIN_TYPES if t.key == CRD)
    assert not crd_type.namespaced and crd_type.api_version == "apiextensions.k8s.io/v1"
    manifest = crd_manifest("example.com", "v1beta1", "widgets", "Widget", short_names=("wg",))
    version = manifest["spec"]["versions"][0]
    assert manifest["metadata"]["name"] == "widgets.example.com"
    assert version["schema"]["openAPIV3Schema"]["x-kubernetes-preserve-unknown-fields"] is True
    assert version["subresources"] == {"status": {}}


# ---- the store through its Python API --------------------------------------------------------


async def test_store_python_api_is_a_full_citizen() -> None:
    store = KubeStore(history=5)
    events = store.subscribe()
    with pytest.raises(ApiError) as err:
        store.create("pods", pod("p"), namespace="ns1")
    assert err.value.code == 404 and err.value.status()["details"]["kind"] == "namespaces"
    ns = store.create("namespaces", {"metadata": {"name": "ns1"}})
    assert ns["status"] == {"phase": "Active"}
    rv0 = store.resource_version
    created = store.create("pods", pod("p", {"app": "db"}), namespace="ns1")
    assert created["metadata"]["resourceVersion"] == str(rv0 + 1)
    assert created["metadata"]["generation"] == 1
    assert created["metadata"]["creationTimestamp"].endswith("Z")
    created["metadata"]["labels"]["app"] = "changed-locally"
    assert store.get("pods", "p", namespace="ns1")["metadata"]["labels"]["app"] == "db"
    same = store.merge_patch("pods", "p", {"metadata": {"labels": {"app": "db"}}}, namespace="ns1")
    assert same["metadata"]["resourceVersion"] == str(rv0 + 1), "a no-op write is not a write"
    gen = store.create("configmaps", {"metadata": {"generateName": "cfg-"}}, namespace="ns1")
    assert gen["metadata"]["name"].startswith("cfg-") and len(gen["metadata"]["name"]) == 9
    kept = store.create(
        "configmaps", {"metadata": {"name": "kept", "finalizers": ["x/y"]}}, namespace="ns1"
    )
    with pytest.raises(ApiError) as err:
        store.merge_patch(
            "configmaps",
            "kept",
            {"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}},
            namespace="ns1",
        )
    assert err.value.code == 422, "deletionTimestamp is set only by a delete"
    marked = store.delete("configmaps", "kept", namespace="ns1")
    assert marked["metadata"]["deletionTimestamp"]
    assert store.try_get("configmaps", "kept", namespace="ns1") is not None
    store.merge_patch("configmaps", "kept", {"metadata": {"finalizers": None}}, namespace="ns1")
    assert store.try_get("configmaps", "kept", namespace="ns1") is None
    assert kept["metadata"]["uid"]
    seen = [events.get_nowait() for _ in range(events.qsize())]
    assert [(t, k) for t, k, _ in seen] == [
        ("ADDED", "namespaces"),
        ("ADDED", "pods"),
        ("ADDED", "configmaps"),
        ("ADDED", "configmaps"),
        ("MODIFIED", "configmaps"),
        ("DELETED", "configmaps"),
    ]
    # Deleting a namespace removes what it holds; deleting a CRD removes its objects.
    store.create(CRD, crd_manifest("example.com", "v1", "widgets", "Widget"))
    store.create("widgets.example.com", {"metadata": {"name": "w"}}, namespace="ns1")
    store.delete(CRD, "widgets.example.com")
    with pytest.raises(ApiError) as err:
        store.resource_type("widgets.example.com")
    assert err.value.code == 404
    store.delete("namespaces", "ns1")
    assert store.list("pods")[0] == [] and store.list("configmaps")[0] == []
    store.unsubscribe(events)


async def test_status_subresource_semantics_in_store() -> None:
    store = KubeStore()
    store.create("namespaces", {"metadata": {"name": NS}})
    store.create(CRD, crd_manifest(GROUP, "v1", PLURAL, "Pgcluster"))
    obj = store.create(PGC, pgcluster("hippo"), namespace=NS)
    assert "status" not in obj, "status is dropped on create when a status subresource exists"
    obj = store.merge_patch(
        PGC, "hippo", {"status": {"state": "x"}, "spec": {"port": "5432"}}, namespace=NS
    )
    assert "status" not in obj and obj["spec"]["port"] == "5432"
    assert obj["metadata"]["generation"] == 2
    obj = store.merge_patch(
        PGC,
        "hippo",
        {"status": {"state": "pgcluster Initialized"}, "spec": {"port": "1"}},
        namespace=NS,
        subresource="status",
    )
    assert obj["status"]["state"] == "pgcluster Initialized" and obj["spec"]["port"] == "5432"
    assert obj["metadata"]["generation"] == 2
    with pytest.raises(ApiError) as err:
        store.merge_patch("configmaps", "x", {}, namespace=NS, subresource="status")
    assert err.value.code == 404


# ---- kubernetes_asyncio ----------------------------------------------------------------------


async def test_namespace_pods_selectors_and_errors(env: Env) -> None:
    core = env.core
    ns = await core.create_namespace({"metadata": {"name": "sel"}})
    assert ns.metadata.labels["kubernetes.io/metadata.name"] == "sel"
    await core.create_namespaced_pod("sel", pod("db-0", {"app": "db", "role": "master"}))
    await core.create_namespaced_pod("sel", pod("db-1", {"app": "db", "role": "replica"}))
    await core.create_namespaced_pod("sel", pod("repo", {"app": "repo"}, phase="Pending"))

    async def names(**kw: Any) -> list[str]:
        result = await core.list_namespaced_pod("sel", **kw)
        return [p.metadata.name for p in result.items]

    assert await names() == ["db-0", "db-1", "repo"]
    assert await names(label_selector="app=db") == ["db-0", "db-1"]
    assert await names(label_selector="role in (master,replica),role!=replica") == ["db-0"]
    assert await names(label_selector="!role") == ["repo"]
    assert await names(label_selector="app,role notin (master)") == ["db-1", "repo"]
    assert await names(field_selector="status.phase=Running") == ["db-0", "db-1"]
    assert await names(field_selector="metadata.name!=repo,status.phase==Running") == [
        "db-0",
        "db-1",
    ]
    everywhere = await core.list_pod_for_all_namespaces(label_selector="app=repo")
    assert [p.metadata.namespace for p in everywhere.items] == ["sel"]
    page = await core.list_namespaced_pod("sel", limit=2)
    assert len(page.items) == 2 and page.metadata._continue
    rest = await core.list_namespaced_pod("sel", limit=2, _continue=page.metadata._continue)
    assert [p.metadata.name for p in rest.items] == ["repo"] and not rest.metadata._continue

    with pytest.raises(ApiException) as exc:
        await core.read_namespaced_pod("nope", "sel")
    body = status_body(exc.value)
    assert exc.value.status == 404 and body["reason"] == "NotFound"
    assert body["message"] == 'pods "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "pods"}
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod("sel", pod("db-0"))
    assert exc.value.status == 409 and status_body(exc.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod("missing", pod("x"))
    body = status_body(exc.value)
    assert exc.value.status == 404 and body["details"]["kind"] == "namespaces"
    with pytest.raises(ApiException) as exc:
        await core.list_namespaced_pod("sel", field_selector="spec.foo=bar")
    assert exc.value.status == 400 and status_body(exc.value)["reason"] == "BadRequest"
    with pytest.raises(ApiException) as exc:
        await core.list_namespaced_pod("sel", label_selector="app in db")
    assert exc.value.status == 400
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod("sel", {"kind": "Service", "metadata": {"name": "s"}})
    assert exc.value.status == 400
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod("sel", pod("Bad_Name"))
    assert exc.value.status == 422 and status_body(exc.value)["reason"] == "Invalid"

    deleted = await core.delete_namespaced_pod("repo", "sel")
    assert deleted.metadata.name == "repo"
    assert await names() == ["db-0", "db-1"]
    await core.delete_namespace("sel")
    assert (await core.list_pod_for_all_namespaces(label_selector="app=db")).items == []


async def test_custom_objects_patch_generation_and_conflicts(env: Env) -> None:
    custom = env.custom
    created = await custom.create_namespaced_custom_object(
        GROUP, "v1", NS, PLURAL, pgcluster("gen-test")
    )
    assert created["metadata"]["generation"] == 1 and "status" not in created
    got = await custom.get_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "gen-test")
    assert got == created
    listed = await custom.list_namespaced_custom_object(
        GROUP, "v1", NS, PLURAL, label_selector="pg-cluster=gen-test"
    )
    assert listed["kind"] == "PgclusterList" and listed["apiVersion"] == f"{GROUP}/v1"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["gen-test"]
    assert listed["items"][0]["kind"] == "Pgcluster"
    assert int(listed["metadata"]["resourceVersion"]) >= int(created["metadata"]["resourceVersion"])

    spec = await custom.patch_namespaced_custom_object(
        GROUP, "v1", NS, PLURAL, "gen-test", {"spec": {"shutdown": True}}, _content_type=MERGE
    )
    assert spec["spec"]["shutdown"] is True and spec["metadata"]["generation"] == 2
    labelled = await custom.patch_namespaced_custom_object(
        GROUP,
        "v1",
        NS,
        PLURAL,
        "gen-test",
        {"metadata": {"labels": {"x": "y"}}},
        _content_type=MERGE,
    )
    assert labelled["metadata"]["generation"] == 2
    assert int(labelled["metadata"]["resourceVersion"]) > int(spec["metadata"]["resourceVersion"])

    stale = {
        "metadata": {"resourceVersion": spec["metadata"]["resourceVersion"]},
        "spec": {"shutdown": False},
    }
    with pytest.raises(ApiException) as exc:
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, PLURAL, "gen-test", stale, _content_type=MERGE
        )
    body = status_body(exc.value)
    assert exc.value.status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]
    fresh = {
        "metadata": {"resourceVersion": labelled["metadata"]["resourceVersion"]},
        "spec": {"shutdown": False},
    }
    ok = await custom.patch_namespaced_custom_object(
        GROUP, "v1", NS, PLURAL, "gen-test", fresh, _content_type=MERGE
    )
    assert ok["spec"]["shutdown"] is False and ok["metadata"]["generation"] == 3

    # The trap: without _content_type the client sends a dict as a JSON patch.
    with pytest.raises(ApiException) as exc:
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, PLURAL, "gen-test", {"spec": {"shutdown": True}}
        )
    assert exc.value.status == 400 and status_body(exc.value)["reason"] == "BadRequest"
    unchanged = await custom.get_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "gen-test")
    assert unchanged["spec"]["shutdown"] is False

    patched = await custom.patch_namespaced_custom_object(
        GROUP,
        "v1",
        NS,
        PLURAL,
        "gen-test",
        [
            {"op": "test", "path": "/spec/shutdown", "value": False},
            {"op": "replace", "path": "/spec/shutdown", "value": True},
            {"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}},
        ],
    )
    assert patched["spec"]["shutdown"] is True and patched["metadata"]["annotations"] == {"a": "b"}
    assert patched["metadata"]["generation"] == 4
    with pytest.raises(ApiException) as exc:
        await custom.patch_namespaced_custom_object(
            GROUP,
            "v1",
            NS,
            PLURAL,
            "gen-test",
            [{"op": "test", "path": "/spec/shutdown", "value": False}],
        )
    assert exc.value.status == 422 and status_body(exc.value)["reason"] == "Invalid"

    with pytest.raises(ApiException) as exc:
        await custom.patch_namespaced_custom_object(
            GROUP,
            "v1",
            NS,
            PLURAL,
            "gen-test",
            {"spec": {}},
            _content_type="application/apply-patch+yaml",
        )
    assert exc.value.status == 415
    with pytest.raises(ApiException) as exc:
        await custom.replace_namespaced_custom_object(
            GROUP, "v1", NS, PLURAL, "gen-test", pgcluster("gen-test")
        )
    assert exc.value.status == 422, "an update of a custom resource needs a resourceVersion"
    body = dict(patched, spec={"replaced": True})
    replaced = await custom.replace_namespaced_custom_object(
        GROUP, "v1", NS, PLURAL, "gen-test", body
    )
    assert replaced["spec"] == {"replaced": True}
    with pytest.raises(ApiException) as exc:
        await custom.replace_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "gen-test", body)
    assert exc.value.status == 409

    gone = await custom.delete_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "gen-test")
    assert gone["metadata"]["name"] == "gen-test"
    with pytest.raises(ApiException) as exc:
        await custom.get_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "gen-test")
    assert exc.value.status == 404
    assert status_body(exc.value)["message"] == f'{PGC} "gen-test" not found'


async def test_status_subresource_over_http(env: Env) -> None:
    custom = env.custom
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, PLURAL, pgcluster("st"))
    main = await custom.patch_namespaced_custom_object(
        GROUP,
        "v1",
        NS,
        PLURAL,
        "st",
        {"status": {"state": "pgcluster Shutdown"}, "metadata": {"labels": {"k": "v"}}},
        _content_type=MERGE,
    )
    assert "status" not in main and main["metadata"]["labels"]["k"] == "v"
    status = await custom.patch_namespaced_custom_object_status(
        GROUP,
        "v1",
        NS,
        PLURAL,
        "st",
        {"status": {"state": "pgcluster Initialized"}, "spec": {"shutdown": True}},
        _content_type=MERGE,
    )
    assert status["status"]["state"] == "pgcluster Initialized"
    assert status["spec"]["shutdown"] is False and status["metadata"]["generation"] == 1
    read = await custom.get_namespaced_custom_object_status(GROUP, "v1", NS, PLURAL, "st")
    assert read["status"]["state"] == "pgcluster Initialized"
    status_json = await custom.patch_namespaced_custom_object_status(
        GROUP,
        "v1",
        NS,
        PLURAL,
        "st",
        [{"op": "replace", "path": "/status/state", "value": "pgcluster Shutdown"}],
    )
    assert status_json["status"]["state"] == "pgcluster Shutdown"
    async with aiohttp.ClientSession() as http:
        url = f"{env.server.url}/api/v1/namespaces/{NS}/configmaps/x/status"
        async with http.patch(url, json={}, headers={"Content-Type": MERGE}) as resp:
            assert resp.status == 404, "configmaps have no status subresource"
    await custom.delete_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "st")


async def test_strategic_merge_patch(env: Env) -> None:
    await env.core.create_namespaced_config_map(
        NS, {"metadata": {"name": "smp"}, "data": {"a": "1"}}
    )
    patched = await env.core.patch_namespaced_config_map(
        "smp",
        NS,
        {"data": {"b": "2"}},
        _content_type="application/strategic-merge-patch+json",
    )
    assert patched.data == {"a": "1", "b": "2"}
    await env.custom.create_namespaced_custom_object(GROUP, "v1", NS, PLURAL, pgcluster("smp"))
    with pytest.raises(ApiException) as exc:
        await env.custom.patch_namespaced_custom_object(
            GROUP,
            "v1",
            NS,
            PLURAL,
            "smp",
            {"spec": {"a": 1}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert exc.value.status == 415 and status_body(exc.value)["reason"] == "UnsupportedMediaType"
    await env.custom.delete_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "smp")
    await env.core.delete_namespaced_config_map("smp", NS)


async def test_watch_from_resource_version_in_order(env: Env) -> None:
    custom = env.custom
    start = (await custom.list_namespaced_custom_object(GROUP, "v1", NS, PLURAL))["metadata"][
        "resourceVersion"
    ]
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, PLURAL, pgcluster("w1"))
    await custom.patch_namespaced_custom_object(
        GROUP, "v1", NS, PLURAL, "w1", {"spec": {"shutdown": True}}, _content_type=MERGE
    )
    env.store.merge_patch(
        PGC, "w1", {"status": {"state": "pgcluster Shutdown"}}, namespace=NS, subresource="status"
    )
    await custom.delete_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "w1")
    seen: list[tuple[str, str, str]] = []
    w = watch.Watch()
    async with w:
        async for event in w.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            "v1",
            NS,
            PLURAL,
            resource_version=start,
            timeout_seconds=1,
        ):
            obj = event["object"]
            seen.append(
                (event["type"], obj["metadata"]["name"], obj["metadata"]["resourceVersion"])
            )
    assert [(t, n) for t, n, _ in seen] == [
        ("ADDED", "w1"),
        ("MODIFIED", "w1"),
        ("MODIFIED", "w1"),
        ("DELETED", "w1"),
    ]
    rvs = [int(rv) for _, _, rv in seen]
    assert rvs == sorted(rvs) and len(set(rvs)) == 4 and rvs[0] > int(start)


async def test_watch_typed_pods_live_and_selectors(env: Env) -> None:
    core = env.core
    rv = (await core.list_namespaced_pod(NS)).metadata.resource_version
    got: list[tuple[str, str]] = []
    w = watch.Watch()

    async def consume() -> None:
        async for event in w.stream(
            core.list_namespaced_pod,
            NS,
            label_selector="watch=yes",
            resource_version=rv,
            timeout_seconds=60,
        ):
            got.append((event["type"], event["object"].metadata.name))
            if len(got) == 4:
                w.stop()
                break

    watches = env.store.open_watches
    task = asyncio.create_task(consume())
    await until(lambda: env.store.open_watches > watches, "the watch to open")
    await core.create_namespaced_pod(NS, pod("wp", {"watch": "yes"}))
    await core.create_namespaced_pod(NS, pod("other", {"watch": "no"}))
    await core.patch_namespaced_pod(
        "wp", NS, {"metadata": {"labels": {"watch": "no"}}}, _content_type=MERGE
    )
    await core.patch_namespaced_pod(
        "other", NS, {"metadata": {"labels": {"watch": "yes"}}}, _content_type=MERGE
    )
    env.store.delete("pods", "other", namespace=NS)
    await asyncio.wait_for(task, 60)
    await w.close()
    assert got == [("ADDED", "wp"), ("DELETED", "wp"), ("ADDED", "other"), ("DELETED", "other")]
    await core.delete_namespaced_pod("wp", NS)


async def test_watch_without_resource_version_lists_first(env: Env) -> None:
    env.store.create("configmaps", {"metadata": {"name": "initial"}}, namespace=NS)
    names: list[str] = []
    w = watch.Watch()
    async with w:
        async for event in w.stream(
            env.core.list_namespaced_config_map,
            NS,
            field_selector="metadata.name=initial",
            timeout_seconds=1,
        ):
            assert event["type"] == "ADDED"
            names.append(event["object"].metadata.name)
    assert names == ["initial"]
    env.store.delete("configmaps", "initial", namespace=NS)


async def test_watch_from_compacted_version_is_gone(env: Env) -> None:
    old = env.store.resource_version
    env.store.create("configmaps", {"metadata": {"name": "before-compact"}}, namespace=NS)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{env.server.url}/_sandbox/compact") as resp:
            assert resp.status == 200
        url = f"{env.server.url}/api/v1/namespaces/{NS}/configmaps"
        async with http.get(url, params={"watch": "1", "resourceVersion": str(old)}) as resp:
            assert resp.status == 200
            lines = (await resp.read()).decode().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    assert event["object"]["message"].startswith(f"too old resource version: {old} (")

    # kubernetes_asyncio turns the ERROR event into ApiException(410); with a server-side
    # timeout it raises at once, without one it retries once from the same version, then raises.
    for kwargs in ({"timeout_seconds": 5}, {}):
        w = watch.Watch()
        with pytest.raises(ApiException) as exc:
            async for _ in w.stream(
                env.core.list_namespaced_config_map, NS, resource_version=str(old), **kwargs
            ):
                pass
        await w.close()
        assert exc.value.status == 410
        assert str(exc.value.reason).startswith("Expired: too old resource version")
    with pytest.raises(ApiException) as exc:
        await env.core.list_namespaced_config_map(
            NS, resource_version=str(old), resource_version_match="Exact"
        )
    assert exc.value.status == 410
    current = await env.core.list_namespaced_config_map(
        NS, resource_version=str(old), resource_version_match="NotOlderThan"
    )
    assert "before-compact" in [c.metadata.name for c in current.items]
    env.store.delete("configmaps", "before-compact", namespace=NS)


async def test_watch_bookmarks(env: Env) -> None:
    env.server.bookmark_interval = 0.2
    try:
        rv = str(env.store.resource_version)
        events: list[dict[str, Any]] = []
        w = watch.Watch()
        async with w:
            # No secret changes: the first event can only be a bookmark, and it must come
            # before the server-side timeout ends the stream.
            async for event in w.stream(
                env.core.list_namespaced_secret,
                NS,
                resource_version=rv,
                allow_watch_bookmarks=True,
                timeout_seconds=60,
            ):
                events.append(event)
                w.stop()
                break
    finally:
        env.server.bookmark_interval = 5.0
    assert [e["type"] for e in events] == ["BOOKMARK"]
    assert events[0]["raw_object"]["kind"] == "Secret"
    assert events[0]["raw_object"]["metadata"]["resourceVersion"] == rv


async def test_dry_run_stores_nothing(env: Env) -> None:
    custom = env.custom
    events = env.store.subscribe()
    rv = env.store.resource_version
    made = await custom.create_namespaced_custom_object(
        GROUP, "v1", NS, PLURAL, pgcluster("dry"), dry_run="All"
    )
    assert made["metadata"]["name"] == "dry" and made["metadata"]["uid"]
    with pytest.raises(ApiException) as exc:
        await custom.get_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "dry")
    assert exc.value.status == 404
    with pytest.raises(ApiException) as exc:
        await custom.create_namespaced_custom_object(
            GROUP, "v1", NS, PLURAL, {"metadata": {"name": "Invalid!"}}, dry_run="All"
        )
    assert exc.value.status == 422
    assert env.store.resource_version == rv and events.empty()
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, PLURAL, pgcluster("dry"))
    rv = env.store.resource_version
    env.store.unsubscribe(events)
    events = env.store.subscribe()
    patched = await custom.patch_namespaced_custom_object(
        GROUP,
        "v1",
        NS,
        PLURAL,
        "dry",
        {"spec": {"port": "1"}},
        dry_run="All",
        _content_type=MERGE,
    )
    assert patched["spec"]["port"] == "1" and patched["metadata"]["generation"] == 2
    await custom.delete_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "dry", dry_run="All")
    stored = await custom.get_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "dry")
    assert "port" not in stored["spec"] and stored["metadata"]["generation"] == 1
    assert env.store.resource_version == rv and events.empty()
    env.store.unsubscribe(events)
    env.store.delete(PGC, "dry", namespace=NS)


async def test_crd_lifecycle_drives_discovery(env: Env) -> None:
    ext = env.ext
    url = env.server.url
    async with aiohttp.ClientSession() as http:

        async def get(path: str) -> tuple[int, dict[str, Any]]:
            async with http.get(url + path) as resp:
                return resp.status, await resp.json()

        status, version = await get("/version")
        assert status == 200 and version["major"] == "1"
        status, core = await get("/api")
        assert core["kind"] == "APIVersions" and core["versions"] == ["v1"]
        status, v1 = await get("/api/v1")
        by_name = {r["name"]: r for r in v1["resources"]}
        assert by_name["pods"]["namespaced"] and by_name["pods"]["shortNames"] == ["po"]
        assert by_name["pods/status"]["verbs"] == ["get", "patch", "update"]
        assert not by_name["namespaces"]["namespaced"]
        assert "watch" in by_name["configmaps"]["verbs"]
        status, groups = await get("/apis")
        assert GROUP in [g["name"] for g in groups["groups"]]
        assert "example.com" not in [g["name"] for g in groups["groups"]]

        crd = await ext.create_custom_resource_definition(
            crd_manifest(
                "example.com",
                "v1alpha1",
                "widgets",
                "Widget",
                short_names=("wg",),
                namespaced=False,
                has_status=False,
            )
        )
        conditions = {c.type: c.status for c in crd.status.conditions}
        assert conditions["Established"] == "True"
        status, group = await get("/apis/example.com")
        assert group["preferredVersion"]["groupVersion"] == "example.com/v1alpha1"
        status, resources = await get("/apis/example.com/v1alpha1")
        assert [(r["name"], r["kind"], r["namespaced"]) for r in resources["resources"]] == [
            ("widgets", "Widget", False)
        ]
        custom = env.custom
        await custom.create_cluster_custom_object(
            "example.com", "v1alpha1", "widgets", {"metadata": {"name": "w"}, "spec": {}}
        )
        listed = await custom.list_cluster_custom_object("example.com", "v1alpha1", "widgets")
        assert [i["metadata"]["name"] for i in listed["items"]] == ["w"]
        await ext.delete_custom_resource_definition("widgets.example.com")
        status, _ = await get("/apis/example.com/v1alpha1")
        assert status == 404
        status, body = await get("/apis/example.com/v1alpha1/widgets")
        assert status == 404 and body["kind"] == "Status"
        status, groups = await get("/apis")
        assert "example.com" not in [g["name"] for g in groups["groups"]]

        async with http.post(url + f"/api/v1/namespaces/{NS}/configmaps/x") as resp:
            assert resp.status == 405 and (await resp.json())["reason"] == "MethodNotAllowed"
        async with http.post(
            url + f"/api/v1/namespaces/{NS}/configmaps",
            data=b"a: [",
            headers={"Content-Type": "text/plain"},
        ) as resp:
            assert resp.status == 415
        async with http.post(
            url + f"/api/v1/namespaces/{NS}/configmaps",
            data=b"{nope",
            headers={"Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 400 and (await resp.json())["reason"] == "BadRequest"
        async with http.get(
            url + "/api/v1/namespaces/pgo/configmaps",
            headers={"Accept": "application/vnd.kubernetes.protobuf"},
        ) as resp:
            assert resp.status == 200 and resp.content_type == "application/json"
        async with http.get(url + "/nothing/here") as resp:
            assert resp.status == 404 and (await resp.json())["kind"] == "Status"


async def test_list_and_watch_many_objects(env: Env) -> None:
    store = env.store
    store.create("namespaces", {"metadata": {"name": "bulk"}})
    for i in range(1000):
        store.create(
            "configmaps",
            {"metadata": {"name": f"cm-{i:04d}", "labels": {"n": str(i)}}, "data": {"k": "v" * 20}},
            namespace="bulk",
        )
    names = [f"cm-{i:04d}" for i in range(1000)]
    items, _ = store.list("configmaps", namespace="bulk")
    assert [o["metadata"]["name"] for o in items] == names
    url = f"{env.server.url}/api/v1/namespaces/bulk/configmaps"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            body = await resp.json()
        assert [o["metadata"]["name"] for o in body["items"]] == names

        start = store.resource_version
        async with http.get(url, params={"watch": "true", "resourceVersion": str(start)}) as resp:
            assert resp.status == 200
            for i in range(5):
                patched = store.merge_patch(
                    "configmaps", "cm-0000", {"data": {"i": str(i)}}, namespace="bulk"
                )
                # A guard against a hang only: each write arrives as its own line, in order.
                line = await asyncio.wait_for(resp.content.readline(), 30)
                event = json.loads(line)
                assert event["type"] == "MODIFIED" and event["object"]["data"]["i"] == str(i)
                assert event["object"]["metadata"]["resourceVersion"] == str(start + i + 1)
                assert patched["metadata"]["resourceVersion"] == str(start + i + 1)
    store.delete("namespaces", "bulk")


async def test_stop_closes_watch_streams_and_bind_errors() -> None:
    store = KubeStore()
    store.create("namespaces", {"metadata": {"name": NS}})
    server = KubeAPIServer(store)
    port = await server.start()
    other = KubeAPIServer(store, port=port)
    with pytest.raises(SandboxError) as err:
        await other.start()
    assert f"127.0.0.1:{port}" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SandboxError):
        await KubeAPIServer(store, host="0.0.0.0").start()
    async with aiohttp.ClientSession() as http:
        # No timeoutSeconds: only the server stopping can end this stream.
        async with http.get(f"{server.url}/api/v1/pods", params={"watch": "1"}) as resp:
            assert resp.status == 200
            assert store.open_watches == 1, "the watch is registered before its headers are sent"
            reader = asyncio.create_task(resp.read())
            await server.stop()
            assert await asyncio.wait_for(reader, 30) == b"", "the stream ended cleanly, empty"
    assert store.open_watches == 0


async def test_kubeconfig_file(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    write_kubeconfig(path, "http://127.0.0.1:1", namespace="ns", context="ctx", user_token="t")
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == "ctx"
    assert doc["contexts"][0]["context"] == {"cluster": "ctx", "user": "ctx", "namespace": "ns"}
    assert doc["clusters"][0]["cluster"]["server"] == "http://127.0.0.1:1"
    assert doc["users"][0]["user"] == {"token": "t"}
    assert path.stat().st_mode & 0o077 == 0


# ---- kubectl ---------------------------------------------------------------------------------


async def kubectl(env: Env, *args: str, check: bool = True) -> tuple[int, str, str]:
    assert KUBECTL is not None
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--kubeconfig",
        str(env.kubeconfig),
        "--cache-dir",
        str(env.cache_dir),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    rc = proc.returncode
    assert rc is not None
    if check:
        assert rc == 0, err.decode()
    return rc, out.decode(), err.decode()


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_kubectl_commands(env: Env) -> None:
    store = env.store
    store.create("pods", pod("hippo-0", {"pg-cluster": "hippo"}), namespace=NS)
    store.create("pods", pod("hippo-1", {"pg-cluster": "hippo"}), namespace=NS)
    store.create(PGC, pgcluster("hippo"), namespace=NS)
    store.merge_patch(
        PGC,
        "hippo",
        {"status": {"state": "pgcluster Initialized"}},
        namespace=NS,
        subresource="status",
    )
    shutil.rmtree(env.cache_dir, ignore_errors=True)
    mark = len(env.server.requests)

    _, out, _ = await kubectl(env, "get", "pods", "-n", NS)
    assert out.split()[0] == "NAME" and "hippo-0" in out and "hippo-1" in out
    discovery = [r["path"] for r in env.server.requests[mark:] if r["verb"] == "discovery"]
    assert "/api" in discovery and "/apis" in discovery

    _, out, _ = await kubectl(env, "get", "pgclusters", "-o", "yaml")
    doc = yaml.safe_load(out)
    assert [i["metadata"]["name"] for i in doc["items"]] == ["hippo"]
    assert doc["items"][0]["status"]["state"] == "pgcluster Initialized"
    _, out, _ = await kubectl(env, "get", "pgcluster", "hippo", "-o", "jsonpath={.status.state}")
    assert out == "pgcluster Initialized"
    _, out, _ = await kubectl(env, "get", "pgc", "-l", "pg-cluster=hippo", "-o", "name")
    assert out.strip() == f"pgcluster.{GROUP}/hippo"

    _, out, _ = await kubectl(
        env, "patch", "pgcluster", "hippo", "--type", "merge", "-p", '{"spec":{"shutdown":true}}'
    )
    assert "patched" in out
    assert store.get(PGC, "hippo", namespace=NS)["spec"]["shutdown"] is True
    _, out, _ = await kubectl(
        env,
        "patch",
        "pgcluster",
        "hippo",
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/spec/shutdown","value":false}]',
    )
    assert "patched" in out
    obj = store.get(PGC, "hippo", namespace=NS)
    assert obj["spec"]["shutdown"] is False and obj["metadata"]["generation"] == 3
    rc, _, err = await kubectl(
        env,
        "patch",
        "pgcluster",
        "hippo",
        "--type",
        "json",
        "-p",
        '[{"op":"remove","path":"/spec/nope"}]',
        check=False,
    )
    assert rc == 1 and "/spec/nope" in err, err

    _, out, _ = await kubectl(env, "delete", "pod", "hippo-1")
    assert 'pod "hippo-1" deleted' in out
    assert store.try_get("pods", "hippo-1", namespace=NS) is None
    rc, _, err = await kubectl(env, "get", "pod", "hippo-1", check=False)
    assert rc == 1 and '(NotFound): pods "hippo-1" not found' in err

    manifest = env.kubeconfig.parent / "cm.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "from-kubectl"},
                "data": {"a": "b"},
            }
        )
    )
    _, out, _ = await kubectl(env, "create", "-f", str(manifest))
    assert "configmap/from-kubectl created" in out
    assert store.get("configmaps", "from-kubectl", namespace=NS)["data"] == {"a": "b"}
    rc, _, err = await kubectl(env, "create", "-f", str(manifest), check=False)
    assert rc == 1 and "AlreadyExists" in err

    _, out, _ = await kubectl(env, "api-resources")
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "Pgcluster" in rows["pgclusters"] and "pgc" in rows["pgclusters"]
    assert "CustomResourceDefinition" in rows["customresourcedefinitions"]
    _, out, _ = await kubectl(env, "get", "pgclusters.v1.crunchydata.com", "-o", "name")
    assert "hippo" in out
    store.delete(PGC, "hippo", namespace=NS)
    store.delete("pods", "hippo-0", namespace=NS)
    store.delete("configmaps", "from-kubectl", namespace=NS)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_kubectl_get_watch(env: Env) -> None:
    assert KUBECTL is not None
    env.store.create("pods", pod("watched-0"), namespace=NS)
    mark = len(env.server.requests)
    before = env.store.open_watches
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--kubeconfig",
        str(env.kubeconfig),
        "--cache-dir",
        str(env.cache_dir),
        "get",
        "pods",
        "-w",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        while not any("watched-0" in line for line in lines):
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 60)).decode())
        # kubectl lists, prints, then watches from the list's resourceVersion: once its watch
        # is open, the new pod reaches it live.
        await until(lambda: env.store.open_watches > before, "kubectl's watch to open")
        env.store.create("pods", pod("watched-1"), namespace=NS)
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert line.split()[0] == "watched-1"
    finally:
        proc.terminate()
        await proc.wait()
    # "a watch ends when its client goes away"
    await until(lambda: env.store.open_watches == before, "the watch to end with its client")
    watches = [
        r
        for r in env.server.requests[mark:]
        if r["verb"] == "watch" and r["path"] == f"/api/v1/namespaces/{NS}/pods"
    ]
    assert watches and all(r["user_agent"].startswith("kubectl/") for r in watches), watches
    assert all("resourceVersion=" in r["query"] for r in watches), watches
    env.store.delete("pods", "watched-0", namespace=NS)
    env.store.delete("pods", "watched-1", namespace=NS)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_kubectl_falls_back_to_legacy_discovery(env: Env) -> None:
    env.server.aggregated_discovery = False
    try:
        shutil.rmtree(env.cache_dir, ignore_errors=True)
        mark = len(env.server.requests)
        _, out, _ = await kubectl(env, "get", "pgclusters", "-o", "name")
        paths = [r["path"] for r in env.server.requests[mark:] if r["verb"] == "discovery"]
        assert "/api/v1" in paths and f"/apis/{GROUP}/v1" in paths
        _, out, _ = await kubectl(env, "api-resources", "--api-group", GROUP)
        assert "pgclusters" in out
    finally:
        env.server.aggregated_discovery = True
        shutil.rmtree(env.cache_dir, ignore_errors=True)


# ---- the request log ---------------------------------------------------------------------------


async def test_request_log_records_verbs(env: Env) -> None:
    mark = len(env.server.requests)
    core = env.core
    await core.create_namespaced_config_map(NS, {"metadata": {"name": "logged"}})
    await core.read_namespaced_config_map("logged", NS)
    await core.list_namespaced_config_map(NS)
    await core.patch_namespaced_config_map("logged", NS, {"data": {"a": "b"}}, _content_type=MERGE)
    await core.replace_namespaced_config_map("logged", NS, {"metadata": {"name": "logged"}})
    w = watch.Watch()
    async with w:
        async for _ in w.stream(
            core.list_namespaced_config_map,
            NS,
            resource_version=str(env.store.resource_version),
            timeout_seconds=1,
        ):
            pass
    await core.delete_namespaced_config_map("logged", NS)
    await core.delete_collection_namespaced_config_map(NS, label_selector="none=here")
    with pytest.raises(ApiException):
        await core.read_namespaced_config_map("logged", NS)
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{env.server.url}/_sandbox/requests", params={"since": str(mark)}
        ) as resp:
            log = await resp.json()
    assert log["next"] == len(env.server.requests)
    entries = log["requests"]
    assert [e["verb"] for e in entries] == [
        "create",
        "get",
        "list",
        "patch",
        "update",
        "watch",
        "delete",
        "deletecollection",
        "get",
    ]
    assert [e["status"] for e in entries] == [201, 200, 200, 200, 200, 200, 200, 200, 404]
    first = entries[0]
    assert first["method"] == "POST" and first["path"] == f"/api/v1/namespaces/{NS}/configmaps"
    assert isinstance(first["time"], float) and "OpenAPI-Generator" in first["user_agent"]
    assert "watch=" in entries[5]["query"] and entries[5]["resource"] == "configmaps"


async def sandbox_requests(env: Env, since: int) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{env.server.url}/_sandbox/requests", params={"since": str(since)}
        ) as resp:
            assert resp.status == 200
            log: dict[str, Any] = await resp.json()
    entries: list[dict[str, Any]] = log["requests"]
    return entries


def test_carried_precondition_reads_each_kind_of_body() -> None:
    def carried(method: str, body: Any, ctype: str = "application/json") -> str:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return carried_precondition(method, ctype, raw)

    assert carried("PATCH", {"metadata": {"resourceVersion": "7"}, "spec": {}}) == "7"
    assert carried("PATCH", {"spec": {}}) == ""
    assert carried("PATCH", {"metadata": {"resourceVersion": None}}) == ""
    assert carried("PUT", b"metadata:\n  resourceVersion: '8'\n", "application/yaml") == "8"
    assert (
        carried(
            "PATCH",
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "9"},
                {"op": "replace", "path": "/spec/x", "value": 1},
            ],
        )
        == "9"
    )
    assert (
        carried(
            "PATCH", [{"op": "replace", "path": "/metadata", "value": {"resourceVersion": "10"}}]
        )
        == "10"
    )
    assert (
        carried(
            "PATCH",
            [
                {"op": "add", "path": "/metadata/resourceVersion", "value": "11"},
                {"op": "remove", "path": "/metadata/resourceVersion"},
            ],
        )
        == ""
    )
    assert carried("PATCH", [{"op": "replace", "path": "/spec/x", "value": 1}]) == ""
    assert carried("DELETE", {"preconditions": {"resourceVersion": "12"}}) == "12"
    assert carried("DELETE", {"preconditions": {"uid": "u"}, "resourceVersion": "13"}) == ""
    assert carried("DELETE", {"metadata": {"resourceVersion": "14"}}) == ""
    assert carried("DELETE", b"") == ""
    assert carried("PATCH", b"{not json") == ""


async def test_request_log_records_preconditions(env: Env) -> None:
    custom, core = env.custom, env.core
    made = await custom.create_namespaced_custom_object(GROUP, "v1", NS, PLURAL, pgcluster("pre"))
    rv0 = made["metadata"]["resourceVersion"]
    mark = len(env.server.requests)

    # A merge patch that carries the resourceVersion is applied only to that version...
    patched = await custom.patch_namespaced_custom_object(
        GROUP,
        "v1",
        NS,
        PLURAL,
        "pre",
        {"metadata": {"resourceVersion": rv0}, "spec": {"shutdown": True}},
        _content_type=MERGE,
    )
    rv1 = patched["metadata"]["resourceVersion"]
    assert int(rv1) > int(rv0) and patched["spec"]["shutdown"] is True
    # ...one without is applied to whatever is stored: no precondition.
    patched = await custom.patch_namespaced_custom_object(
        GROUP,
        "v1",
        NS,
        PLURAL,
        "pre",
        {"spec": {"port": "5433"}},
        _content_type=MERGE,
    )
    rv2 = patched["metadata"]["resourceVersion"]
    assert int(rv2) > int(rv1) and patched["spec"]["port"] == "5433"
    # A stale one is refused with kube-apiserver's optimistic-lock Status.
    with pytest.raises(ApiException) as exc:
        await custom.patch_namespaced_custom_object(
            GROUP,
            "v1",
            NS,
            PLURAL,
            "pre",
            {"metadata": {"resourceVersion": rv0}, "spec": {"shutdown": False}},
            _content_type=MERGE,
        )
    body = status_body(exc.value)
    assert (exc.value.status, body["reason"]) == (409, "Conflict")
    assert body["message"] == (
        f'Operation cannot be fulfilled on {PGC} "pre": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert body["details"] == {"name": "pre", "group": GROUP, "kind": PLURAL}
    # An empty one on a custom resource is no way around the precondition: custom resources
    # allow no unconditional update, so the registry refuses it.
    with pytest.raises(ApiException) as exc:
        await custom.patch_namespaced_custom_object(
            GROUP,
            "v1",
            NS,
            PLURAL,
            "pre",
            {"metadata": {"resourceVersion": ""}, "spec": {"shutdown": False}},
            _content_type=MERGE,
        )
    body = status_body(exc.value)
    assert (exc.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"] == (
        f'{PGC} "pre" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
        "must be specified for an update"
    )
    # A JSON patch can carry it as a test.
    patched = await custom.patch_namespaced_custom_object(
        GROUP,
        "v1",
        NS,
        PLURAL,
        "pre",
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv2},
            {"op": "replace", "path": "/spec/shutdown", "value": False},
        ],
    )
    rv3 = patched["metadata"]["resourceVersion"]
    assert patched["spec"]["shutdown"] is False

    def precondition(rv: str) -> Any:
        return client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version=rv))

    # A delete with a stale precondition gets rest.BeforeDelete's Conflict (it names the kind).
    with pytest.raises(ApiException) as exc:
        await custom.delete_namespaced_custom_object(
            GROUP, "v1", NS, PLURAL, "pre", body=precondition(rv0)
        )
    body = status_body(exc.value)
    assert (exc.value.status, body["reason"]) == (409, "Conflict")
    assert body["message"] == (
        f'Operation cannot be fulfilled on Pgcluster.{GROUP} "pre": the ResourceVersion in the '
        f"precondition ({rv0}) does not match the ResourceVersion in record ({rv3}). "
        "The object might have been modified"
    )
    assert body["details"] == {"name": "pre", "group": GROUP, "kind": "Pgcluster"}
    # An empty one is compared as it is, and no stored object has an empty resourceVersion.
    with pytest.raises(ApiException) as exc:
        await custom.delete_namespaced_custom_object(
            GROUP, "v1", NS, PLURAL, "pre", body=precondition("")
        )
    assert (
        exc.value.status == 409
        and "precondition () does not match" in status_body(exc.value)["message"]
    )
    assert env.store.get(PGC, "pre", namespace=NS)["metadata"]["resourceVersion"] == rv3
    await custom.delete_namespaced_custom_object(
        GROUP, "v1", NS, PLURAL, "pre", body=precondition(rv3)
    )
    assert env.store.try_get(PGC, "pre", namespace=NS) is None

    # Built-in types allow unconditional updates: an empty resourceVersion is no precondition.
    await core.create_namespaced_config_map(NS, {"metadata": {"name": "pre"}})
    cm = await core.patch_namespaced_config_map(
        "pre", NS, {"metadata": {"resourceVersion": ""}, "data": {"a": "b"}}, _content_type=MERGE
    )
    assert cm.data == {"a": "b"}
    cm_rv = cm.metadata.resource_version
    await core.replace_namespaced_config_map(
        "pre", NS, {"metadata": {"name": "pre", "resourceVersion": cm_rv}, "data": {"a": "c"}}
    )
    await core.delete_namespaced_config_map("pre", NS)
    assert env.store.try_get("configmaps", "pre", namespace=NS) is None

    entries = await sandbox_requests(env, mark)
    writes = [
        (e["method"], e["status"], e["precondition"])
        for e in entries
        if e["method"] in ("PUT", "PATCH", "DELETE")
    ]
    assert writes == [
        ("PATCH", 200, rv0),
        ("PATCH", 200, ""),
        ("PATCH", 409, rv0),
        ("PATCH", 422, ""),
        ("PATCH", 200, rv2),
        ("DELETE", 409, rv0),
        ("DELETE", 409, ""),
        ("DELETE", 200, rv3),
        ("PATCH", 200, ""),
        ("PUT", 200, cm_rv),
        ("DELETE", 200, ""),
    ]
    others = [e for e in entries if e["method"] not in ("PUT", "PATCH", "DELETE")]
    assert [e["method"] for e in others] == ["POST"]
    assert all("precondition" not in e for e in others)
