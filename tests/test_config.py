from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ivytui.config import ConfigError, load_file, resolve

GOOD = """\
cluster: hippo
namespace: pgo
flavor: pgo
interval: 5
v4:
  database: {host: 127.0.0.1, port: 15432, user: postgres}
repo:
  bucket: other
  verify_tls: false
thresholds:
  catch_up_bytes: 1048576
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "ivytui.yaml"
    p.write_text(text)
    return p


def test_a_good_file_is_read(tmp_path: Path) -> None:
    text = GOOD.replace("v4:\n  database:", "v4_database:").replace("\n  thresholds", "")
    cfg = load_file(write(tmp_path, text))
    assert cfg.flavor == "pgo"
    assert cfg.interval == 5.0
    assert cfg.v4_database.port == 15432
    assert cfg.repo.bucket == "other"
    assert cfg.repo.verify_tls is False
    assert cfg.thresholds.catch_up_bytes == 1048576


def test_unknown_setting_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_file(write(tmp_path, "cluster: hippo\nnamespaec: pgo\n"))
    assert "line 2" in str(err.value)
    assert "namespaec" in str(err.value)


def test_broken_yaml_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_file(write(tmp_path, "cluster: hippo\nrepo:\n  bucket: [a\n  path: x\n"))
    assert "line 4" in str(err.value) or "line 3" in str(err.value)


def test_a_wrong_type_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_file(write(tmp_path, "cluster: hippo\nthresholds:\n  catch_up_bytes: lots\n"))
    assert "line 3" in str(err.value)
    assert "thresholds.catch_up_bytes" in str(err.value)


def test_flags_win_over_the_file_which_wins_over_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster: fromfile\nnamespace: filens\n")
    env = {"IVYTUI_CLUSTER": "fromenv", "IVYTUI_NAMESPACE": "envns", "IVYTUI_FLAVOR": "pgo"}
    cfg = resolve({"config": str(path), "namespace": "flagns"}, env)
    assert cfg.cluster == "fromfile"
    assert cfg.namespace == "flagns"
    assert cfg.flavor == "pgo"
    cfg = resolve({}, env)
    assert cfg.cluster == "fromenv"


def test_bad_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="not a valid Kubernetes name"):
        resolve({"cluster": "Hippo_1"}, {})
    with pytest.raises(ConfigError, match="interval"):
        resolve({"interval": 0.01}, {})


def test_the_cli_says_which_line_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster: hippo\n  bad indent: [\n")
    out = subprocess.run(
        [sys.executable, "-m", "ivytui", "status", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "line" in out.stderr and str(path) in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
