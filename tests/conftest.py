from __future__ import annotations

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
