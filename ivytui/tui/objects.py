"""The object under the cursor as text: a step with its checks, a cluster object, a pod or an
info file of the repo, from the view the screen shows (``y`` opens it, read-only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ivytui.domain.runbook import StepStatus
from ivytui.tui.protocols import HubViewLike


def to_plain(obj: Any) -> Any:
    """Mappings and sequences as plain dicts and lists, for YAML."""
    if isinstance(obj, Mapping):
        return {str(key): to_plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(item) for item in obj]
    return obj


def object_text(obj: Mapping[str, Any]) -> tuple[str, str | None]:
    """The text and the highlighting language of an object from ``HubView.objects``."""
    if set(obj) == {"text"} and isinstance(obj["text"], str):
        return obj["text"], None
    import yaml

    if obj.get("kind") == "Secret":
        obj = {
            **obj,
            **{
                field: dict.fromkeys(obj[field], "<masked>")
                for field in ("data", "stringData")
                if isinstance(obj.get(field), Mapping)
            },
        }

    text = yaml.safe_dump(to_plain(obj), sort_keys=False, allow_unicode=True, width=100)
    return text, "yaml"


def step_data(step: StepStatus) -> dict[str, Any]:
    """A runbook step as plain data: its state and every check with its reason and sources."""
    return {
        "step": step.number,
        "title": step.title,
        "state": step.state,
        "summary": step.summary,
        "checks": [{"ok": c.ok, "text": c.text, "sources": list(c.sources)} for c in step.checks],
    }


def yaml_for(view: HubViewLike | None, key: str | None) -> tuple[str, str, str | None] | None:
    """(title, text, language) of the object ``key`` (``step/3``, ``v4``, ``pod/…``,
    ``repo/archive.info``) in ``view``; ``None`` when the view does not hold it (yet)."""
    if key is None or view is None:
        return None
    if key.startswith("step/"):
        number = int(key.split("/", 1)[1])
        step = next((s for s in view.steps if s.number == number), None)
        if step is None:
            return None
        text, language = object_text(step_data(step))
        return f"step {step.number}: {step.title}", text, language
    obj = view.objects.get(key)
    if obj is None:
        return None
    text, language = object_text(obj)
    return key, text, language
