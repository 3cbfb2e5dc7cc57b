from __future__ import annotations

import pytest

from ivytui.config import Config
from tests.conftest import RunningWorld


@pytest.fixture
def cfg(world: RunningWorld) -> Config:
    """The monitor's configuration for the session's world (fast polls, short timeouts)."""
    return Config(
        cluster=world.cluster,
        namespace=world.namespace,
        v5_name=world.v5_name,
        kubeconfig=str(world.kubeconfig),
        interval=0.3,
        source_timeout=3.0,
        read_only=True,
    )
