"""Bad input to `ivytui sandbox …`: one clear line, a non-zero exit, nothing left running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ivytui.sandbox import control


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ivytui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line(out: subprocess.CompletedProcess[str], words: str) -> None:
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and not ln.startswith("[")]
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert words in lines[0], lines[0]


def assert_nothing_left(directory: Path) -> None:
    state = control.read_state(directory) or {}
    for what, pid in control.world_pids(state):
        assert not control.alive(pid), f"{what} (pid {pid}) left running"
    for what, port in control.world_ports(state):
        assert not control.listening(port), f"{what} left listening on {port}"


def test_unknown_flag_is_one_line_and_exit_2() -> None:
    out = run("sandbox", "up", "--dir", "x", "--bogus")
    assert out.returncode == 2
    assert_one_line(out, "unrecognized arguments: --bogus")


def test_down_where_no_world_runs(tmp_path: Path) -> None:
    out = run("sandbox", "down", "--dir", str(tmp_path))
    assert_one_line(out, "no sandbox world")


def test_no_postgresql_binaries(tmp_path: Path) -> None:
    env = dict(os.environ, IVYTUI_PG_BINDIR=str(tmp_path / "nowhere"))
    out = run("sandbox", "up", "--dir", str(tmp_path / "w"), env=env)
    assert_one_line(out, "IVYTUI_PG_BINDIR")
    assert_nothing_left(tmp_path / "w")


@pytest.mark.world
def test_a_port_that_cannot_be_bound(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run("sandbox", "up", "--dir", str(tmp_path), "--kube-port", str(port))
    assert_one_line(out, str(port))
    assert_nothing_left(tmp_path)
