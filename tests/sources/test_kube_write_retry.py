"""The writer's retries: bounded, backing off, honouring Retry-After, only for answers that say
"try again"; a 409 and a 404 are never retried."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio.client.rest import ApiException

from ivytui.config import Config
from ivytui.errors import KubeError
from ivytui.sources import kube_write
from ivytui.sources.kube_write import ConflictError, KubeWriter


def _error(status: int, retry_after: str | None = None) -> ApiException:
    exc = ApiException(status=status, reason="Service Unavailable")
    exc.body = json.dumps({"kind": "Status", "message": "the server is currently unable"})
    exc.headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return exc


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(kube_write.asyncio, "sleep", sleep)
    return waits


def _writer() -> KubeWriter:
    return KubeWriter(Config(cluster="hippo"), namespace="pgo", context="")


def _answers(*results: Any) -> Any:
    queue = list(results)
    calls: list[int] = []

    async def request() -> Any:
        calls.append(1)
        result = queue.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result

    request.calls = calls  # type: ignore[attr-defined]
    return request


async def test_a_503_is_retried_after_its_retry_after(slept: list[float]) -> None:
    request = _answers(_error(503, "3"), _error(429, "1"), {"ok": True})
    assert await _writer()._call("patch x", request) == {"ok": True}
    assert slept == [3.0, 1.0]


async def test_retries_are_bounded_and_back_off(slept: list[float]) -> None:
    request = _answers(*(_error(500) for _ in range(kube_write.ATTEMPTS)))
    attempts = kube_write.ATTEMPTS
    with pytest.raises(
        KubeError, match=rf"500 the server is currently unable \(after {attempts} attempts\)"
    ):
        await _writer()._call("patch x", request)
    assert len(request.calls) == kube_write.ATTEMPTS
    assert slept == sorted(slept) and slept[0] < slept[-1]


async def test_a_conflict_is_never_retried(slept: list[float]) -> None:
    request = _answers(_error(409), {"ok": True})
    with pytest.raises(ConflictError):
        await _writer()._call("patch x", request)
    assert len(request.calls) == 1 and slept == []


async def test_retry_after_is_capped(slept: list[float]) -> None:
    request = _answers(_error(503, "3600"), {"ok": True})
    await _writer()._call("get x", request)
    assert slept == [kube_write.RETRY_AFTER_MAX]
