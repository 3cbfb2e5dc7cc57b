"""The user's keymap: a YAML file that maps binding ids to keys (``freeze: F``), applied with
Textual's ``App.set_keymap`` so that the footer, the help screen, the runbook's key column and
the binding itself all follow it; and the keys as they are bound once it is applied.

The file is ``--keymap FILE``, else ``$XDG_CONFIG_HOME/ivytui/keymap.yaml`` (default
``~/.config/ivytui/keymap.yaml``) when it exists. Anything wrong with it — not YAML, not a
mapping, an unknown id, a key that is not a string, two bindings on one key — is a
:class:`~ivytui.errors.ConfigError` of one line that names the file, raised before the screen
starts.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from textual.binding import Binding, BindingsMap, InvalidBinding
from textual.dom import DOMNode

from ivytui.errors import ConfigError

FILE_NAME = "keymap.yaml"


def default_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/ivytui/keymap.yaml``, ``~/.config/ivytui/keymap.yaml`` without it."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base else Path(env.get("HOME") or Path.home()) / ".config"
    return root / "ivytui" / FILE_NAME


def load_keymap(
    path: str | os.PathLike[str] | None,
    bindings: Iterable[Binding],
    *,
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The keymap of ``path`` (given: it must exist), else of the default file if it exists,
    checked against ``bindings`` (the ones a keymap may remap); ``{}`` when there is none."""
    if path is None:
        found = default_path(env)
        if not found.is_file():
            return {}
    else:
        found = Path(path)
    return read_keymap(found, bindings)


def read_keymap(path: Path, bindings: Iterable[Binding]) -> dict[str, str]:
    """The keymap in the file ``path``, checked against ``bindings``."""
    import yaml

    def wrong(what: str) -> ConfigError:
        return ConfigError(f"keymap {path}: {what}")

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise wrong("no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise wrong(f"cannot be read ({exc})") from None
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise wrong(f"not valid YAML: {_yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise wrong(
            f"must map binding ids to keys (e.g. `freeze: F`), not hold a {type(data).__name__}"
        )
    return check_keymap(data, bindings, wrong)


def check_keymap(
    data: Mapping[Any, Any],
    bindings: Iterable[Binding],
    wrong: Callable[[str], Exception] = ConfigError,
) -> dict[str, str]:
    """``data`` as a keymap (binding id → keys) once every id is known, every key a string, and
    no key bound twice; else ``wrong(what)`` is raised."""
    declared = list(bindings)
    defaults: dict[str, set[str]] = {}
    for binding in Binding.make_bindings(declared):
        if binding.id:
            defaults.setdefault(binding.id, set()).add(binding.key)
    keymap: dict[str, str] = {}
    for binding_id, keys in data.items():
        if not isinstance(binding_id, str) or binding_id not in defaults:
            raise wrong(f"unknown binding id {binding_id!r}{_suggest(binding_id, defaults)}")
        if not isinstance(keys, str) or not keys.strip():
            what = f"the key of {binding_id!r} must be a string, not {keys!r}"
            if isinstance(keys, bool | int | float):
                # YAML reads y, n, on, off as booleans and 1 as a number
                what += " (quote it in the file)"
            raise wrong(what)
        keymap[binding_id] = keys.strip()
    effective = {binding_id: set(keys) for binding_id, keys in defaults.items()}
    for binding_id, keys in keymap.items():
        try:
            effective[binding_id] = {b.key for b in Binding.make_bindings([Binding(keys, "")])}
        except InvalidBinding:
            raise wrong(f"the key of {binding_id!r} is not a list of keys: {keys!r}") from None
    holders: dict[str, list[str]] = {}
    for binding_id, keys in effective.items():
        for key in keys:
            holders.setdefault(key, []).append(binding_id)
    for key, ids in holders.items():
        if len(ids) > 1 and not all(key in defaults[i] for i in ids):
            # two bindings on one key that did not share it by design (pause / resume do)
            raise wrong(f"the key {key!r} would be bound to both {ids[0]!r} and {ids[1]!r}")
    return keymap


def _suggest(binding_id: object, known: Iterable[str]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(str(binding_id), names, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known ids: {', '.join(names)})"


def _yaml_problem(exc: Exception) -> str:
    """A YAML error in one line: its problem and where."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(problem)


# -- the keys as bound ------------------------------------------------------------------------


def declared_bindings(nodes: Iterable[type[DOMNode]]) -> list[Binding]:
    """The bindings the classes ``nodes`` declare, in order."""
    return [b for node in nodes for b in node.BINDINGS if isinstance(b, Binding)]


def bound_keys(
    nodes: Iterable[type[DOMNode]], keymap: Mapping[str, str]
) -> dict[str, list[Binding]]:
    """binding id → its bindings (one per key) in the classes ``nodes``, ``keymap`` applied as
    Textual applies it."""
    found: dict[str, list[Binding]] = {}
    for node in nodes:
        bindings = BindingsMap(node.BINDINGS)
        if keymap:
            bindings.apply_keymap(keymap)
        for key_bindings in bindings.key_to_bindings.values():
            for binding in key_bindings:
                found.setdefault(binding.id or binding.action, []).append(binding)
    return found


def help_rows(
    declared: Iterable[Binding],
    bound: Mapping[str, list[Binding]],
    display: Callable[[Binding], str],
    *,
    full: Collection[str] = (),
    skip: Collection[str] = (),
) -> list[tuple[str, str]]:
    """(key, description) in the order ``declared``, each key as ``bound``; the bindings in
    ``full`` described by their tooltip; bindings that share a key (pause / resume) share a
    line."""
    rows: dict[str, list[str]] = {}
    for binding_declared in declared:
        if binding_declared.id in skip:
            continue
        for binding in bound.get(binding_declared.id or binding_declared.action, ()):
            descriptions = rows.setdefault(display(binding), [])
            description = binding.description or binding.action
            if binding.id in full and binding.tooltip:
                description = binding.tooltip
            if description not in descriptions:
                descriptions.append(description)
    return [(key, " / ".join(descriptions)) for key, descriptions in rows.items()]
