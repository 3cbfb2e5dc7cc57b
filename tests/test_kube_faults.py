"""The API emulator's fault stage against the real clients: kubernetes_asyncio, aiohttp and kubectl.

Faults are armed through the HTTP client of `ivytui.sandbox.kubeapi.faults` (run in a thread: it
blocks, and the emulator serves on this test's loop).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from ivytui.errors import SandboxError
from ivytui.sandbox.kubeapi import KubeAPIServer, KubeStore, crd_manifest, write_kubeconfig
from ivytui.sandbox.kubeapi import faults as kube_faults
from ivytui.sandbox.kubeapi.faults import FaultBusy

GROUP = "ivory-operator.ivorysql.org"
VERSION = "v1beta1"
PLURAL = "ivoryclusters"
IVC = f"{PLURAL}.{GROUP}"
NS = "faults"
MERGE = "application/merge-patch+json"
KUBECTL = shutil.which("kubectl")
LOCK = "the object has been modified; please apply your changes to the latest version and try again"


@dataclass
class Env:
    store: KubeStore
    server: KubeAPIServer
    kubeconfig: Path
    cache_dir: Path
    api: client.ApiClient

    # The generated client is typed with model classes; these tests pass plain dicts.
    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    @property
    def custom(self) -> Any:
        return client.CustomObjectsApi(self.api)

    @property
    def url(self) -> str:
        return self.server.url

    def log_since(self, mark: int) -> list[dict[str, Any]]:
        return [r for r in self.server.requests[mark:] if r["verb"] != "discovery"]


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a condition no event signals; the generous limit only turns a hang into a failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not condition():
        assert loop.time() < deadline, f"still waiting for {what}"
        await asyncio.sleep(0.01)


async def arm(env: Env, **fault: Any) -> dict[str, Any]:
    return await asyncio.to_thread(kube_faults.arm, env.url, **fault)


async def armed(env: Env) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for f in await asyncio.to_thread(kube_faults.armed, env.url)}


def headers(exc: ApiException) -> Mapping[str, str]:
    assert exc.headers is not None
    return exc.headers


def status_body(exc: ApiException) -> dict[str, Any]:
    assert exc.body is not None
    body: dict[str, Any] = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure" and body["code"] == exc.status
    return body


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "database", "image": "postgres:16"}]},
    }


def ivorycluster(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "IvoryCluster",
        "metadata": {"name": name},
        "spec": {"shutdown": False},
    }


def lines_of(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


@pytest_asyncio.fixture(scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("kubefaults")
    store = KubeStore()
    store.create("namespaces", {"metadata": {"name": NS}})
    store.create(
        "customresourcedefinitions.apiextensions.k8s.io",
        crd_manifest(GROUP, VERSION, PLURAL, "IvoryCluster", short_names=("ivc",)),
    )
    server = KubeAPIServer(store)
    await server.start()
    kubeconfig = tmp / "kubeconfig"
    write_kubeconfig(kubeconfig, server.url, namespace=NS)
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    api = client.ApiClient(configuration=cfg)
    try:
        yield Env(store, server, kubeconfig, tmp / "kubectl-cache", api)
    finally:
        await api.close()
        await server.stop()


@pytest_asyncio.fixture(autouse=True)
async def no_faults_left(env: Env) -> AsyncIterator[None]:
    yield
    env.server.faults.clear()


# ---- the control endpoint ----------------------------------------------------------------------


async def test_control_endpoint_arms_lists_clears_and_refuses_bad_bodies(env: Env) -> None:
    assert not env.server.faults.live, "nothing is armed: the request path skips the stage"
    f = await arm(
        env, kind="status", status=503, verb="patch", resource=PLURAL, count=2, retry_after=1
    )
    assert f == {
        "id": f["id"],
        "kind": "status",
        "verb": "patch",
        "resource": PLURAL,
        "count": 2,
        "status": 503,
        "retry_after": 1,
        "fired": 0,
        "active": True,
        "remaining": 2,
    }
    h = await arm(env, kind="hang", verb="get", resource="pods", seconds=3, count=1)
    g = await arm(env, kind="gone", resource="pods", duration=30)
    assert g["form"] == "event" and g["verb"] == "*" and "count" not in g
    assert 0 < g["expires_in"] <= 30
    assert len({f["id"], h["id"], g["id"]}) == 3
    listed = await armed(env)
    assert list(listed) == [f["id"], h["id"], g["id"]]
    assert listed[h["id"]]["seconds"] == 3 and listed[h["id"]]["fired"] == 0
    assert await asyncio.to_thread(kube_faults.clear, env.url) == 3
    assert await armed(env) == {} and not env.server.faults.live

    bad: list[tuple[dict[str, Any], str]] = [
        ({}, "kind must be one of status, hang, close-watch, gone, conflict, stop; got null"),
        ({"kind": "explode"}, 'got "explode"'),
        ({"kind": "status"}, "status must be 429, 500 or 503"),
        ({"kind": "status", "status": 404}, "status must be 429, 500 or 503"),
        ({"kind": "status", "status": 500, "retry_after": 1}, "retry_after applies to 429"),
        ({"kind": "status", "status": 503, "retry_after": -1}, "retry_after must be an integer"),
        ({"kind": "status", "status": 503, "count": 0}, "count must be an integer >= 1; got 0"),
        ({"kind": "status", "status": 503, "count": True}, "count must be an integer"),
        ({"kind": "status", "status": 503, "duration": -2}, "duration must be a number"),
        ({"kind": "status", "status": 503, "verb": "explode"}, 'verb must be "*" or one of'),
        ({"kind": "status", "status": 503, "resource": "pods/log"}, "resource must be"),
        ({"kind": "status", "status": 503, "name": ""}, "name must be a non-empty"),
        ({"kind": "status", "status": 503, "seconds": 1}, 'unknown field "seconds"'),
        ({"kind": "hang", "verb": "get"}, "seconds is required"),
        ({"kind": "conflict", "verb": "get"}, "one of patch, update, delete"),
        ({"kind": "gone", "verb": "list"}, "one of watch for a gone fault"),
        ({"kind": "gone", "form": "smoke"}, 'form must be "event" or "http"'),
        ({"kind": "close-watch", "abort": "yes"}, "abort must be true or false"),
        ({"kind": "close-watch", "events": 1.5}, "events must be an integer >= 0"),
        ({"kind": "stop"}, "seconds is required"),
        ({"kind": "stop", "seconds": 1, "count": 1}, 'unknown field "count" for a stop fault'),
    ]
    for body, words in bad:
        with pytest.raises(SandboxError) as err:
            await arm(env, **body)
        message = str(err.value)
        assert words in message, (body, message)
        assert "\n" not in message
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{env.url}/_sandbox/faults/kube", data=b"{nope") as resp:
            assert resp.status == 400
            assert (await resp.json())["error"].startswith("the body is not JSON")
        async with http.post(f"{env.url}/_sandbox/faults/kube", json=[1]) as resp:
            assert resp.status == 400
            assert await resp.json() == {"error": "a fault must be a JSON object"}
        async with http.put(f"{env.url}/_sandbox/faults/kube", json={}) as resp:
            assert resp.status == 405 and resp.headers["Allow"] == "GET, POST, DELETE"
    assert await armed(env) == {}, "a refused fault is not armed"


# ---- status faults -----------------------------------------------------------------------------


async def test_status_503_on_patches_then_real_answers(env: Env) -> None:
    env.store.create(IVC, ivorycluster("hippo"), namespace=NS)
    f = await arm(
        env, kind="status", status=503, verb="patch", resource=PLURAL, count=2, retry_after=1
    )
    mark = len(env.server.requests)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            await env.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                NS,
                PLURAL,
                "hippo",
                {"spec": {"shutdown": True}},
                _content_type=MERGE,
            )
        assert err.value.status == 503
        assert headers(err.value)["Retry-After"] == "1"
        body = status_body(err.value)
        assert body["reason"] == "ServiceUnavailable"
        assert body["message"] == "the server is currently unable to handle the request"
        assert body["details"] == {"retryAfterSeconds": 1}
    # Other verbs on the same resource are served.
    got = await env.custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "hippo")
    assert got["spec"]["shutdown"] is False, "the refused patches stored nothing"
    patched = await env.custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "hippo", {"spec": {"shutdown": True}}, _content_type=MERGE
    )
    assert patched["spec"]["shutdown"] is True
    log = env.log_since(mark)
    assert [(r["verb"], r["status"], r.get("fault")) for r in log] == [
        ("patch", 503, f["id"]),
        ("patch", 503, f["id"]),
        ("get", 200, None),
        ("patch", 200, None),
    ]
    listed = (await armed(env))[f["id"]]
    assert listed["fired"] == 2 and listed["remaining"] == 0 and listed["active"] is False
    assert not env.server.faults.live, "a spent fault leaves the request path"
    env.store.delete(IVC, "hippo", namespace=NS)


async def test_status_429_and_500_bodies(env: Env) -> None:
    env.store.create("pods", pod("status-0"), namespace=NS)
    too_many = await arm(env, kind="status", status=429, verb="list", resource="pods")
    internal = await arm(
        env, kind="status", status=500, verb="get", resource="pods", name="status-0"
    )
    quiet = await arm(env, kind="status", status=503, resource="configmaps", retry_after=0)
    mark = len(env.server.requests)
    with pytest.raises(ApiException) as err:
        await env.core.list_namespaced_pod(NS)
    assert err.value.status == 429 and headers(err.value)["Retry-After"] == "1"
    assert status_body(err.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Too many requests, please try again later.",
        "reason": "TooManyRequests",
        "details": {"retryAfterSeconds": 1},
        "code": 429,
    }
    with pytest.raises(ApiException) as err:
        await env.core.read_namespaced_pod("status-0", NS)
    assert err.value.status == 500 and "Retry-After" not in headers(err.value)
    body = status_body(err.value)
    assert body["reason"] == "InternalError"
    assert body["message"] == "Internal error occurred: etcdserver: request timed out"
    assert body["details"] == {"causes": [{"message": "etcdserver: request timed out"}]}
    with pytest.raises(ApiException) as err:
        await env.core.list_namespaced_config_map(NS)
    assert err.value.status == 503 and "Retry-After" not in headers(err.value)
    assert "details" not in status_body(err.value), "no retry-after period: no details"
    # Each fired once: the same requests are now served.
    assert len((await env.core.list_namespaced_pod(NS)).items) == 1
    assert (await env.core.read_namespaced_pod("status-0", NS)).metadata.name == "status-0"
    await env.core.list_namespaced_config_map(NS)
    faults = [r.get("fault") for r in env.log_since(mark)]
    assert faults == [too_many["id"], internal["id"], quiet["id"], None, None, None]
    env.store.delete("pods", "status-0", namespace=NS)


async def test_duration_fault_ends_by_itself(env: Env) -> None:
    f = await arm(env, kind="status", status=500, resource="configmaps", duration=2)
    assert "count" not in f, "a duration alone has no count"
    mark = len(env.server.requests)
    with pytest.raises(ApiException) as err:
        await env.core.list_namespaced_config_map(NS)
    assert err.value.status == 500
    stage = env.server.faults
    await until(lambda: not stage.faults()[0]["active"], "the fault to expire")
    await env.core.list_namespaced_config_map(NS)
    assert [(r["status"], r.get("fault")) for r in env.log_since(mark)] == [
        (500, f["id"]),
        (200, None),
    ]
    listed = (await armed(env))[f["id"]]
    assert listed["fired"] == 1 and listed["expires_in"] == 0


# ---- hangs -------------------------------------------------------------------------------------


async def test_hang_holds_a_request_then_serves_it(env: Env) -> None:
    env.store.create("pods", pod("held"), namespace=NS)
    f = await arm(env, kind="hang", verb="get", resource="pods", name="held", seconds=0.4)
    mark = len(env.server.requests)
    got = await env.core.read_namespaced_pod("held", NS)
    assert got.metadata.name == "held"
    await env.core.read_namespaced_pod("held", NS)
    first, second = env.log_since(mark)
    assert first["status"] == 200 and first["fault"] == f["id"]
    assert first["duration_ms"] >= 400, "the answer waited for the hang"
    assert second["status"] == 200 and "fault" not in second
    env.store.delete("pods", "held", namespace=NS)


async def test_hang_until_the_client_gives_up(env: Env) -> None:
    f = await arm(env, kind="hang", verb="list", resource="pods", seconds=600)
    mark = len(env.server.requests)
    with pytest.raises(asyncio.TimeoutError):
        await env.core.list_namespaced_pod(NS, _request_timeout=0.3)
    # The server notices the client went away: the held request is logged as 499.
    await until(lambda: len(env.log_since(mark)) == 1, "the abandoned request to be logged")
    (entry,) = env.log_since(mark)
    assert entry["status"] == 499 and entry["fault"] == f["id"]
    await env.core.list_namespaced_pod(NS)
    assert "fault" not in env.log_since(mark)[-1]


async def test_clear_releases_a_held_request(env: Env) -> None:
    f = await arm(env, kind="hang", resource="secrets", seconds=600)
    mark = len(env.server.requests)
    call = asyncio.create_task(env.core.list_namespaced_secret(NS))
    stage = env.server.faults
    await until(lambda: stage.faults()[0]["fired"] == 1, "the list to be held")
    assert not call.done()
    assert await asyncio.to_thread(kube_faults.clear, env.url) == 1
    assert (await call).items == []
    (entry,) = env.log_since(mark)
    assert entry["status"] == 200 and entry["fault"] == f["id"]


# ---- watches -----------------------------------------------------------------------------------


async def test_close_watch_after_its_initial_events(env: Env) -> None:
    for i in range(2):
        env.store.create("pods", pod(f"cw-{i}"), namespace=NS)
    f = await arm(env, kind="close-watch", resource="pods")
    mark = len(env.server.requests)
    async with aiohttp.ClientSession() as http:
        # No timeoutSeconds: only the fault can end this stream.
        url = f"{env.url}/api/v1/namespaces/{NS}/pods"
        async with http.get(url, params={"watch": "1"}) as resp:
            assert resp.status == 200
            events = lines_of(await resp.read())
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "cw-0"),
        ("ADDED", "cw-1"),
    ]
    (entry,) = env.log_since(mark)
    assert entry["verb"] == "watch" and entry["status"] == 200 and entry["fault"] == f["id"]
    for i in range(2):
        env.store.delete("pods", f"cw-{i}", namespace=NS)


async def test_close_watch_after_k_events_and_the_client_resumes(env: Env) -> None:
    env.store.create("pods", pod("k-0"), namespace=NS)
    f = await arm(env, kind="close-watch", resource="pods", namespace=NS, events=2)
    mark = len(env.server.requests)
    w = watch.Watch()
    seen: list[tuple[str, str]] = []
    created: dict[str, str] = {}
    async with w.stream(env.core.list_namespaced_pod, NS) as stream:
        async for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 1:
                for i in (1, 2, 3):
                    obj = env.store.create("pods", pod(f"k-{i}"), namespace=NS)
                    created[f"k-{i}"] = obj["metadata"]["resourceVersion"]
            if len(seen) == 4:
                break
    assert seen == [("ADDED", f"k-{i}") for i in range(4)], "nothing lost, nothing twice"
    watches = [r for r in env.log_since(mark) if r["verb"] == "watch"]
    assert len(watches) == 2
    assert watches[0]["fault"] == f["id"] and "resourceVersion" not in watches[0]["query"]
    # kubernetes_asyncio watched again from the last event the cut stream delivered.
    assert f"resourceVersion={created['k-2']}" in watches[1]["query"]
    assert "fault" not in watches[1]
    for i in range(4):
        env.store.delete("pods", f"k-{i}", namespace=NS)


async def test_close_watch_abort_resets_the_stream(env: Env) -> None:
    env.store.create("configmaps", {"metadata": {"name": "cm-0"}}, namespace=NS)
    f = await arm(env, kind="close-watch", resource="configmaps", abort=True)
    mark = len(env.server.requests)
    async with aiohttp.ClientSession() as http:
        url = f"{env.url}/api/v1/namespaces/{NS}/configmaps"
        async with http.get(url, params={"watch": "1"}) as resp:
            assert resp.status == 200
            first = json.loads(await resp.content.readline())
            assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "cm-0"
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
    (entry,) = env.log_since(mark)
    assert entry["fault"] == f["id"]
    env.store.delete("configmaps", "cm-0", namespace=NS)


async def test_gone_on_a_resumed_watch_as_an_error_event(env: Env) -> None:
    f = await arm(env, kind="gone", resource="pods", count=3)
    rv = str(env.store.resource_version)
    mark = len(env.server.requests)
    url = f"{env.url}/api/v1/namespaces/{NS}/pods"
    async with aiohttp.ClientSession() as http:
        # A watch that does not resume is not a candidate.
        params = {"watch": "1", "timeoutSeconds": "1", "resourceVersion": "0"}
        async with http.get(url, params=params) as resp:
            assert resp.status == 200
            await resp.read()
        assert (await armed(env))[f["id"]]["fired"] == 0
        async with http.get(url, params={"watch": "1", "resourceVersion": rv}) as resp:
            assert resp.status == 200, "the watch cache answers 410 inside the stream"
            (event,) = lines_of(await resp.read())
    assert event["type"] == "ERROR"
    assert event["object"] == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"too old resource version: {rv} ({int(rv) + 1})",
        "reason": "Expired",
        "code": 410,
    }
    # kubernetes_asyncio retries a 410 once, then raises it.
    w = watch.Watch()
    with pytest.raises(ApiException) as err:
        async with w.stream(env.core.list_namespaced_pod, NS, resource_version=rv) as stream:
            async for _ in stream:
                pass
    assert err.value.status == 410 and "Expired: too old resource version" in str(err.value)
    watches = [r for r in env.log_since(mark) if r["verb"] == "watch"]
    assert [r.get("fault") for r in watches] == [None, f["id"], f["id"], f["id"]]
    assert (await armed(env))[f["id"]]["remaining"] == 0


async def test_gone_as_http_410(env: Env) -> None:
    f = await arm(env, kind="gone", resource="pods", form="http")
    rv = str(env.store.resource_version)
    mark = len(env.server.requests)
    with pytest.raises(ApiException) as err:
        await env.core.list_namespaced_pod(NS, watch=True, resource_version=rv)
    assert err.value.status == 410
    body = status_body(err.value)
    assert body["reason"] == "Expired" and body["message"].startswith("too old resource version")
    # Spent: the same resume now streams, and a new pod reaches it.
    async with aiohttp.ClientSession() as http:
        url = f"{env.url}/api/v1/namespaces/{NS}/pods"
        async with http.get(url, params={"watch": "1", "resourceVersion": rv}) as resp:
            assert resp.status == 200
            env.store.create("pods", pod("after-gone"), namespace=NS)
            event = json.loads(await resp.content.readline())
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "after-gone"
    statuses = [(r["status"], r.get("fault")) for r in env.log_since(mark)]
    assert statuses == [(410, f["id"]), (200, None)]
    env.store.delete("pods", "after-gone", namespace=NS)


# ---- conflicts ---------------------------------------------------------------------------------


async def test_conflict_on_writes(env: Env) -> None:
    env.store.create(IVC, ivorycluster("rhino"), namespace=NS)
    env.store.create("pods", pod("rhino-0"), namespace=NS)
    f = await arm(env, kind="conflict", verb="patch", resource=PLURAL)
    mark = len(env.server.requests)
    with pytest.raises(ApiException) as err:
        await env.custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "missing", {"spec": {"shutdown": True}}, _content_type=MERGE
        )
    assert err.value.status == 404, "a missing object cannot conflict"
    assert (await armed(env))[f["id"]]["fired"] == 0
    with pytest.raises(ApiException) as err:
        await env.custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "rhino", {"spec": {"shutdown": True}}, _content_type=MERGE
        )
    assert err.value.status == 409
    assert status_body(err.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'Operation cannot be fulfilled on {IVC} "rhino": {LOCK}',
        "reason": "Conflict",
        "details": {"name": "rhino", "group": GROUP, "kind": PLURAL},
        "code": 409,
    }
    assert env.store.get(IVC, "rhino", namespace=NS)["spec"]["shutdown"] is False
    await env.custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "rhino", {"spec": {"shutdown": True}}, _content_type=MERGE
    )
    # Any write: a PUT and a delete conflict too, and change nothing.
    g = await arm(env, kind="conflict", resource="pods", name="rhino-0", count=2)
    current = await env.core.read_namespaced_pod("rhino-0", NS)
    current.metadata.labels = {"touched": "yes"}
    with pytest.raises(ApiException) as err:
        await env.core.replace_namespaced_pod("rhino-0", NS, current)
    assert err.value.status == 409
    assert status_body(err.value)["message"] == (
        f'Operation cannot be fulfilled on pods "rhino-0": {LOCK}'
    )
    with pytest.raises(ApiException) as err:
        await env.core.delete_namespaced_pod("rhino-0", NS)
    assert err.value.status == 409
    assert "labels" not in env.store.get("pods", "rhino-0", namespace=NS)["metadata"]
    await env.core.delete_namespaced_pod("rhino-0", NS)
    log = env.log_since(mark)
    assert [(r["verb"], r["status"], r.get("fault")) for r in log] == [
        ("patch", 404, None),
        ("patch", 409, f["id"]),
        ("patch", 200, None),
        ("get", 200, None),
        ("update", 409, g["id"]),
        ("delete", 409, g["id"]),
        ("delete", 200, None),
    ]
    env.store.delete(IVC, "rhino", namespace=NS)


# ---- the whole server stopped ------------------------------------------------------------------


async def test_stop_keeps_the_store_and_restarts_on_the_same_port(env: Env) -> None:
    server = env.server
    env.store.create("pods", pod("survivor"), namespace=NS)
    port, rv = server.port, env.store.resource_version
    before = len(server.requests)
    kept = list(server.requests)
    async with aiohttp.ClientSession() as http:
        url = f"{env.url}/api/v1/namespaces/{NS}/pods"
        async with http.get(url, params={"watch": "1"}) as resp:
            assert (json.loads(await resp.content.readline()))["type"] == "ADDED"
            f = await arm(env, kind="stop", seconds=3)
            assert f["kind"] == "stop" and f["seconds"] == 3 and f["state"] == "stopping"
            assert await resp.read() == b"", "the stop ends the open watch cleanly"
    await until(lambda: not server.running, "the server to stop")
    with pytest.raises(aiohttp.ClientConnectionError):
        await env.core.read_namespaced_pod("survivor", NS)
    with pytest.raises(SandboxError) as err:
        await arm(env, kind="status", status=500)
    assert "cannot reach the Kubernetes API emulator" in str(err.value)
    await server.faults.restarted()
    assert server.running and server.port == port
    got = await env.core.read_namespaced_pod("survivor", NS)
    assert got.metadata.resource_version == str(rv), "the store outlived the stop"
    created = env.store.create("pods", pod("after-stop"), namespace=NS)
    assert int(created["metadata"]["resourceVersion"]) == rv + 1
    assert server.requests[:before] == kept, "the request log is kept"
    watches = [r for r in server.requests[before:] if r["verb"] == "watch"]
    assert watches[0]["fault"] == f["id"], "the watch the stop ended is marked"
    listed = (await armed(env))[f["id"]]
    assert listed["fired"] == 1 and listed["state"] == "restarted" and not listed["active"]
    for name in ("survivor", "after-stop"):
        env.store.delete("pods", name, namespace=NS)


async def test_stop_in_process_refuses_a_second_stop_and_yields_to_a_final_stop() -> None:
    store = KubeStore()
    server = KubeAPIServer(store)
    await server.start()
    f = server.faults.arm({"kind": "stop", "seconds": 600})
    with pytest.raises(FaultBusy) as err:
        server.faults.arm({"kind": "stop", "seconds": 1})
    assert err.value.code == 409 and "already stopped or stopping" in str(err.value)
    await until(lambda: server.faults.faults()[0].get("state") == "stopped", "the stop")
    assert not server.running
    await server.stop()
    await server.faults.restarted()
    assert not server.running, "a stop for good cancels the pending restart"
    assert server.faults.faults()[0]["id"] == f["id"]


# ---- kubectl -----------------------------------------------------------------------------------


async def kubectl(env: Env, *args: str) -> tuple[int, str, str]:
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
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_kubectl_waits_out_429_and_503_with_retry_after(env: Env) -> None:
    env.store.create("pods", pod("patient"), namespace=NS)
    throttled = await arm(env, kind="status", status=429, verb="list", resource="pods")
    unavailable = await arm(env, kind="status", status=503, verb="list", resource="pods")
    mark = len(env.server.requests)
    rc, out, err = await kubectl(env, "get", "pods", "-o", "name")
    assert rc == 0, err
    assert out.split() == ["pod/patient"]
    lists = [r for r in env.log_since(mark) if r["verb"] == "list"]
    assert [(r["status"], r.get("fault")) for r in lists] == [
        (429, throttled["id"]),
        (503, unavailable["id"]),
        (200, None),
    ]
    assert all(r["user_agent"].startswith("kubectl/") for r in lists)
    # client-go slept the Retry-After second before each retry.
    assert lists[1]["time"] - lists[0]["time"] >= 1.0
    assert lists[2]["time"] - lists[1]["time"] >= 1.0
    env.store.delete("pods", "patient", namespace=NS)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_kubectl_shows_errors_it_does_not_retry(env: Env) -> None:
    env.store.create("pods", pod("shown"), namespace=NS)
    # Without a Retry-After, client-go does not retry a 503 or a 429: kubectl shows the Status.
    f = await arm(env, kind="status", status=503, verb="get", resource="pods", retry_after=0)
    mark = len(env.server.requests)
    rc, _, err = await kubectl(env, "get", "pod", "shown")
    assert rc != 0
    assert "Error from server (ServiceUnavailable): the server is currently unable" in err, err
    gets = [r for r in env.log_since(mark) if r["verb"] == "get"]
    assert [(r["status"], r.get("fault")) for r in gets] == [(503, f["id"])]
    await arm(env, kind="status", status=500, verb="get", resource="pods")
    rc, _, err = await kubectl(env, "get", "pod", "shown")
    assert rc != 0
    assert (
        "Error from server (InternalError): Internal error occurred: "
        "etcdserver: request timed out" in err
    ), err
    await arm(env, kind="conflict", resource="pods", name="shown")
    rc, _, err = await kubectl(env, "annotate", "pod", "shown", "ivytui/touched=yes")
    assert rc != 0
    assert (
        f'Error from server (Conflict): Operation cannot be fulfilled on pods "shown": {LOCK}'
        in (err)
    ), err
    assert "annotations" not in env.store.get("pods", "shown", namespace=NS)["metadata"]
    rc, out, err = await kubectl(env, "annotate", "pod", "shown", "ivytui/touched=yes")
    assert rc == 0, err
    assert out.strip() == "pod/shown annotated"
    env.store.delete("pods", "shown", namespace=NS)
