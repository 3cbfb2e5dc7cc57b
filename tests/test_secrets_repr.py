"""No secret in a repr, nor in a traceback rendered with its locals."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from rich.traceback import Traceback

from ivytui.config import Config, DatabaseTarget
from ivytui.domain.flavor import IVYO
from ivytui.sandbox import backrest as br
from ivytui.sandbox.load import CarelessWriter
from ivytui.sandbox.objectstore import ObjectStore
from ivytui.sandbox.world import World, WorldOptions
from ivytui.sources.postgres import ConnectTarget, PgSource

PASSWORD = "Pw-7f3a91c2"
DSN_PASSWORD = "Dsn-c0ffee42"
ACCESS_KEY = "AKIA-5b7d0e11"
SECRET_KEY = "Sk-9d8c7b6a"
SECRETS = (PASSWORD, DSN_PASSWORD, ACCESS_KEY, SECRET_KEY)
DSN = f"postgresql://u:{DSN_PASSWORD}@db.example:5432/postgres"


def _fail(obj: object) -> None:
    raise RuntimeError("boom")


def _traceback_text(obj: object) -> str:
    """A traceback whose frames hold ``obj`` and nothing secret besides, rendered with locals."""
    try:
        _fail(obj)
    except RuntimeError as exc:
        tb = Traceback.from_exception(type(exc), exc, exc.__traceback__, show_locals=True)
    console = Console(file=io.StringIO(), width=240, color_system=None)
    console.print(tb)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def _target() -> DatabaseTarget:
    return DatabaseTarget(host="db", user="u", password=PASSWORD, dsn=DSN, secret="s")


def _world(tmp: Path) -> World:
    w = World(WorldOptions(directory=tmp))
    w.superuser_password = PASSWORD
    w.monitor_password = PASSWORD
    w.app_password = PASSWORD
    w.objstore.access_key = ACCESS_KEY
    w.objstore.secret_key = SECRET_KEY
    return w


def _store(tmp: Path) -> ObjectStore:
    store = ObjectStore(tmp, storage="s3", bucket="hippo")
    store.access_key, store.secret_key = ACCESS_KEY, SECRET_KEY
    return store


def _pg_source() -> PgSource:
    async def locate() -> ConnectTarget:
        raise AssertionError("not called")

    pg = PgSource("v4", Config(v4_database=_target()), IVYO, locate)
    pg.target = ConnectTarget(host="db", user="u", password=PASSWORD, dsn=DSN)
    return pg


def _writer(tmp: Path) -> CarelessWriter:
    targets = [("v4", f"postgresql://app:{PASSWORD}@127.0.0.1:1/postgres")]
    return CarelessWriter(lambda: targets, tmp / "acked.txt", interval=1.0)


BUILDERS: dict[str, tuple[Callable[[Path], object], str]] = {
    "DatabaseTarget": (lambda _: _target(), "DatabaseTarget("),
    "Config": (lambda _: Config(v4_database=_target(), v5_database=_target()), "Config("),
    "ConnectTarget": (
        lambda _: ConnectTarget(host="db", user="u", password=PASSWORD, dsn=DSN),
        "ConnectTarget(",
    ),
    "RepoTarget": (
        lambda _: br.RepoTarget("127.0.0.1", 9000, access_key=ACCESS_KEY, secret_key=SECRET_KEY),
        "RepoTarget(",
    ),
    "ObjectStore": (_store, "ObjectStore("),
    "World": (_world, "World("),
    "PgSource": (lambda _: _pg_source(), "PgSource"),
    "CarelessWriter": (_writer, "CarelessWriter("),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_no_secret_in_repr_or_in_a_traceback_with_locals(name: str, tmp_path: Path) -> None:
    build, shown = BUILDERS[name]
    obj = build(tmp_path)
    text = repr(obj)
    assert shown in text
    rendered = _traceback_text(obj)
    # The object is there, among the locals of the frames…
    assert shown in rendered and "obj" in rendered
    # …and none of its secrets.
    for secret in SECRETS:
        assert secret not in text, f"{secret} in repr({name})"
        assert secret not in rendered, f"{secret} in a traceback holding a {name}"
