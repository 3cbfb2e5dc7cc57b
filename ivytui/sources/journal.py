"""The journal: one append-only JSONL record per attempted action, never a secret.

Records go to `$IVYTUI_STATE_DIR/journal.jsonl` (default `$XDG_STATE_HOME/ivytui`, else
`~/.local/state/ivytui`), mode 0600. A short summary of the newest records is also kept on the
cluster (a ConfigMap) so that every viewer sees what the driver did.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SECRET_KEYS = re.compile(r"(password|secret|token|key|credential|s3\.conf|gcs)", re.I)
REDACTED = "<redacted>"


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("IVYTUI_STATE_DIR"):
        return Path(env["IVYTUI_STATE_DIR"]).expanduser()
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ivytui"


def scrub(value: Any) -> Any:
    """Replace anything that looks like a secret value; keeps the shape for the reader."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in ("data", "stringData") and isinstance(v, Mapping):
                out[k] = {kk: REDACTED for kk in v}
            elif SECRET_KEYS.search(str(k)) and isinstance(v, (str, bytes)):
                out[k] = REDACTED
            else:
                out[k] = scrub(v)
        return out
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return re.sub(r"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@", r"\1" + REDACTED + "@", value)
    return value


@dataclass(frozen=True)
class JournalRecord:
    step: str
    action: str
    outcome: str  # started | done | refused | stopped | failed | cancelled
    detail: str = ""
    change: Mapping[str, Any] = field(default_factory=dict)
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    context: str = ""
    namespace: str = ""
    cluster: str = ""
    v5_name: str = ""
    override: bool = False
    attempt: str = ""
    """Ties an action's "started" to its outcome."""
    holder: str = ""
    """The console that acted (user, host, pid, random suffix)."""
    at: float = field(default_factory=time.time)
    who: str = field(default_factory=lambda: _who())
    host: str = field(default_factory=socket.gethostname)

    def to_json(self) -> str:
        return json.dumps(scrub(asdict(self)), sort_keys=True, default=str)

    def summary(self) -> str:
        """One line for the cluster's copy of the journal (scrubbed)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at))
        extra = f" ({self.detail})" if self.detail else ""
        flag = " [override]" if self.override else ""
        who = self.holder or f"{self.who}@{self.host}"
        return str(scrub(f"{stamp} {who} {self.step} {self.action}: {self.outcome}{flag}{extra}"))


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


class Journal:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "journal.jsonl"

    def append(self, record: JournalRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(record.to_json() + "\n")

    def records(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        found = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                found.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a crash mid-write: the rest still counts
        return found


def interrupted_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The "started" records with no outcome of the same attempt after them."""
    started: dict[str, Mapping[str, Any]] = {}
    ended: set[str] = set()
    for rec in records:
        attempt = str(rec.get("attempt") or "")
        if not attempt:
            continue
        if rec.get("outcome") == "started":
            started.setdefault(attempt, rec)
        else:
            ended.add(attempt)
    return [rec for attempt, rec in started.items() if attempt not in ended]
