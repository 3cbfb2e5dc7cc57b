"""The screens are typed against ``ExecutorLike`` and ``HubLike``; the real executor and hub,
and the doubles the TUI tests drive, must have that surface — every method and attribute, with
compatible parameters — so that a double never silently stands in for a shape that drifted."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from tui_fakes import CONFIG, FakeExecutor, FakeHub, catching_up, make_view

from ivytui.tui.protocols import ExecutorLike, HubLike


def surface(protocol: type) -> dict[str, Any]:
    """The members a protocol declares: name → the function, or the property."""
    return {
        name: value
        for name, value in vars(protocol).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }


def real_hub() -> Any:
    from ivytui.sources.hub import Hub

    return Hub(CONFIG)


def real_executor() -> Any:
    from ivytui.sources.actions import Executor

    return Executor(real_hub())


def fake_hub() -> Any:
    return FakeHub(make_view(catching_up()))


def fake_executor() -> Any:
    hub = FakeHub(make_view(catching_up()))
    return FakeExecutor(hub, CONFIG)


CASES: list[tuple[type, str, Callable[[], Any]]] = [
    (HubLike, "ivytui.sources.hub.Hub", real_hub),
    (HubLike, "tui_fakes.FakeHub", fake_hub),
    (ExecutorLike, "ivytui.sources.actions.Executor", real_executor),
    (ExecutorLike, "tui_fakes.FakeExecutor", fake_executor),
]


def incompatible(wanted: inspect.Signature, found: inspect.Signature) -> list[str]:
    """Why a method with signature ``found`` cannot be called the ways ``wanted`` allows."""
    problems: list[str] = []
    params = dict(found.parameters)
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    has_var_pos = any(p.kind is p.VAR_POSITIONAL for p in params.values())
    wanted_params = [p for p in wanted.parameters.values() if p.name != "self"]
    positional = [
        p
        for p in params.values()
        if p.name != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    for index, param in enumerate(wanted_params):
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            if index >= len(positional) and not has_var_pos:
                problems.append(f"takes no positional parameter {param.name!r}")
                continue
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            match = params.get(param.name)
            if match is None:
                if not has_var_kw:
                    problems.append(f"has no parameter {param.name!r}")
                continue
            if match.kind is match.POSITIONAL_ONLY:
                problems.append(f"{param.name!r} cannot be passed by keyword")
            if param.default is not param.empty and match.default is param.empty:
                problems.append(f"{param.name!r} has no default")
    named = {p.name for p in wanted_params}
    for name, param in params.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name not in named and param.default is param.empty:
            problems.append(f"requires {name!r}, which callers do not pass")
    return problems


@pytest.mark.parametrize(("protocol", "what", "build"), CASES, ids=[what for _, what, _ in CASES])
def test_the_real_classes_and_the_doubles_have_the_surface_the_screens_use(
    protocol: type, what: str, build: Callable[[], Any]
) -> None:
    obj = build()
    problems: list[str] = []
    for name, member in surface(protocol).items():
        if not hasattr(obj, name):
            problems.append(f"{what} has no {name!r}")
            continue
        if isinstance(member, property):
            value = getattr(obj, name)
            if callable(value) and not isinstance(value, str):
                problems.append(f"{what}.{name} is a method, the protocol reads an attribute")
            continue
        found = getattr(type(obj), name, None)
        if found is None or not callable(found):
            problems.append(f"{what}.{name} is not a method")
            continue
        if inspect.iscoroutinefunction(member) != inspect.iscoroutinefunction(found):
            kind = "async" if inspect.iscoroutinefunction(member) else "plain"
            problems.append(f"{what}.{name} must be {kind}")
        for problem in incompatible(inspect.signature(member), inspect.signature(found)):
            problems.append(f"{what}.{name} {problem}")
    assert problems == []


def test_the_check_sees_a_drift() -> None:
    """The comparison itself: a missing keyword, a new required parameter, a lost default."""

    class Wanted:
        async def execute(self, plan: Any, *, shown: Any = None) -> None: ...

    def sig(fn: Callable[..., Any]) -> inspect.Signature:
        return inspect.signature(fn)

    async def no_shown(self: Any, plan: Any) -> None: ...
    async def extra(self: Any, plan: Any, *, shown: Any = None, now: float) -> None: ...
    async def no_default(self: Any, plan: Any, *, shown: Any) -> None: ...
    async def fine(self: Any, plan: Any, *, shown: Any = None, later: int = 0) -> None: ...

    wanted = sig(Wanted.execute)
    assert incompatible(wanted, sig(no_shown)) == ["has no parameter 'shown'"]
    assert incompatible(wanted, sig(extra)) == ["requires 'now', which callers do not pass"]
    assert incompatible(wanted, sig(no_default)) == ["'shown' has no default"]
    assert incompatible(wanted, sig(fine)) == []
