"""The headless commands against the sandbox: status, manifest, grants, and their bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import RunningWorld

pytestmark = pytest.mark.world


def ivytui(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ivytui", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def world_env(w: RunningWorld) -> dict[str, str]:
    env = dict(os.environ)
    for line in (w.dir / "env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


def test_status_json_answers_for_every_source(world: RunningWorld) -> None:
    out = ivytui("status", "--json", env=world_env(world))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {k: v["ok"] for k, v in doc["sources"].items()} == dict.fromkeys(
        ("v4", "v4db", "repo", "v5", "v5db", "marks"), True
    )
    assert [s["number"] for s in doc["steps"]] == list(range(8))
    assert doc["steps"][1]["state"] == "done"


def test_status_with_an_unreachable_api_server_exits_1_and_says_which(
    world: RunningWorld, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    cfg = yaml.safe_load(world.kubeconfig.read_text())
    cfg["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{dead}"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    env = world_env(world)
    env["KUBECONFIG"] = str(path)
    out = ivytui("status", "--json", env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert not doc["sources"]["v4"]["ok"]
    assert doc["sources"]["v4"]["problem"]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "args,words",
    [
        (["--context", "nope"], "context 'nope'"),
        (["-n", "missing-ns"], "missing-ns"),
        (["--kubeconfig", "/nonexistent/kubeconfig"], "no kubeconfig"),
    ],
)
def test_status_bad_input_is_one_line_and_exit_2(
    world: RunningWorld, args: list[str], words: str
) -> None:
    out = ivytui("status", *args, env=world_env(world))
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], out.stderr
    assert out.stdout == ""


def test_manifest_prints_the_standby_without_secret_values(world: RunningWorld) -> None:
    out = ivytui("manifest", env=world_env(world))
    assert out.returncode == 0, out.stderr
    docs = list(yaml.safe_load_all(out.stdout))
    kinds = [d["kind"] for d in docs]
    assert kinds == ["Secret", "IvoryCluster"]
    spec = docs[1]["spec"]
    assert spec["standby"] == {"enabled": True, "repoName": "repo1"}
    assert spec["backups"]["pgbackrest"]["global"]["repo1-path"] == (
        "/backrestrepo/hippo-backrest-shared-repo"
    )
    assert world.state["s3"]["secret_key"] not in out.stdout
    with_secrets = ivytui("manifest", "--include-secrets", env=world_env(world))
    assert world.state["s3"]["secret_key"] in with_secrets.stdout


def test_manifest_for_an_unknown_cluster(world: RunningWorld) -> None:
    out = ivytui("manifest", "nope", env=world_env(world))
    assert out.returncode == 2
    assert "v4 cluster nope not found" in out.stderr


@pytest.mark.parametrize("flavor,role", [("ivyo", "_ivoryrepl"), ("pgo", "_crunchyrepl")])
def test_grants_prints_the_sql_of_the_flavor(flavor: str, role: str) -> None:
    out = ivytui("grants", "--flavor", flavor)
    assert out.returncode == 0
    assert out.stdout.count(f"TO {role};") == 4
    assert "pg_read_binary_file(text, bigint, bigint, boolean)" in out.stdout
