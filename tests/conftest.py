from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivytui.sandbox import control

# This machine may export CA bundles for a proxy; the sandbox's S3 server has its own certificate.
for _var in ("REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE", "SSL_CERT_FILE"):
    os.environ.pop(_var, None)


class RunningWorld:
    """A started sandbox world, as a test sees it from outside."""

    def __init__(self, directory: Path, state: dict[str, Any]) -> None:
        self.dir = directory
        self.state = state

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def kube_url(self) -> str:
        return str(self.state["kube_url"])

    @property
    def namespace(self) -> str:
        return str(self.state["namespace"])

    @property
    def cluster(self) -> str:
        return str(self.state["cluster"])

    @property
    def v5_name(self) -> str:
        return str(self.state["v5_name"])

    @property
    def v4_dsn(self) -> str:
        return str(self.state["v4"]["dsn"])

    def refresh(self) -> dict[str, Any]:
        state = control.read_state(self.dir)
        assert state is not None
        self.state = state
        return state

    def v5_dsn(self, name: str | None = None) -> str:
        state = self.refresh()
        port = state["v5"][name or self.v5_name]["port"]
        return f"postgresql://postgres:{state['superuser_password']}@127.0.0.1:{port}/postgres"

    def s3_client(self) -> Any:
        import boto3

        s3 = self.state["s3"]
        return boto3.client(
            "s3",
            endpoint_url=s3["endpoint"],
            aws_access_key_id=s3["access_key"],
            aws_secret_access_key=s3["secret_key"],
            region_name=s3["region"],
            verify=False,
        )

    def repo_prefix(self) -> str:
        return str(self.state["s3"]["repo_path"]).strip("/") + "/"


def start_world(directory: Path, **kwargs: Any) -> RunningWorld:
    opts = control.UpOptions(**kwargs)
    state = control.up(directory, opts, timeout=240)
    return RunningWorld(directory, state)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorld]:
    """One IVYO world with a replaying standby for the whole session."""
    directory = tmp_path_factory.mktemp("world")
    w = start_world(directory, with_standby=True, archive_timeout=5)
    try:
        yield w
    finally:
        control.down(directory)


GRANTED_FUNCTIONS = [
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
]
MOVE_DONE = [
    "1 create-standby",
    "3 freeze",
    "4 shutdown-v4",
    "5 promote",
    "6 grants",
    "7 retire-v4",
]


async def assert_moved_without_loss(w: RunningWorld, role: str) -> None:
    """After the whole move: every acknowledged row on v5, writable on a new timeline, and the
    replication role holding its four grants."""
    import asyncpg

    acked = [int(x) for x in Path(w.state["load"]["acked_file"]).read_text().split()]
    assert len(acked) >= 20
    v5 = await asyncpg.connect(w.v5_dsn())
    try:
        present = {r["id"] for r in await v5.fetch("SELECT id FROM ivytui_load")}
        missing = sorted(set(acked) - present)
        assert not missing, f"{len(missing)} acknowledged rows lost: {missing[:10]}"
        assert await v5.fetchval("SELECT NOT pg_is_in_recovery()")
        walfile = await v5.fetchval("SELECT pg_walfile_name(pg_current_wal_lsn())")
        assert int(walfile[:8], 16) >= 2
        await v5.execute("CREATE TABLE written_after_the_move (id int)")
        granted = await v5.fetchval(
            "SELECT bool_and(has_function_privilege($1, f, 'EXECUTE')) FROM unnest($2::text[]) f",
            role,
            GRANTED_FUNCTIONS,
        )
        assert granted
    finally:
        await v5.close()


def assert_journal_of_the_move(w: RunningWorld, records: list[dict[str, Any]]) -> None:
    """One `done` record per step that acts, in order, and no secret anywhere."""
    assert [r["step"] for r in records if r["outcome"] == "done"] == MOVE_DONE
    text = json.dumps(records)
    assert w.state["superuser_password"] not in text
    assert w.state["s3"]["secret_key"] not in text
