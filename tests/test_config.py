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


def test_a_monitor_role_is_a_user_and_the_secret_with_its_password(tmp_path: Path) -> None:
    cfg = load_file(
        write(
            tmp_path,
            "cluster: hippo\n"
            "v4_database: {user: ivytui_monitor, secret: hippo-ivytui-monitor}\n"
            "v5_database:\n"
            "  secret: hippo-ivytui-monitor\n",
        )
    )
    assert cfg.v4_database.user == "ivytui_monitor"
    assert cfg.v4_database.secret == "hippo-ivytui-monitor"
    assert cfg.v4_database.password == "" and not cfg.v4_database.explicit
    assert cfg.v5_database.secret == "hippo-ivytui-monitor" and cfg.v5_database.user == ""


def test_a_monitor_dsn_is_read(tmp_path: Path) -> None:
    dsn = "postgresql://ivytui_monitor:pw@127.0.0.1:5432/postgres"
    cfg = load_file(write(tmp_path, f"v4_database:\n  dsn: {dsn!r}\n"))
    assert cfg.v4_database.dsn == dsn and cfg.v4_database.explicit


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("cluster: hippo\nv4_database:\n  user: m\n  secret: Bad_Name\n", 4, "v4_database.secret"),
        (
            "v5_database:\n  user: m\n  secret: s\n  password: pw\n",
            4,
            "password or the Secret",
        ),
        ("v4_database:\n  host: h\n  port: 70000\n", 3, "v4_database.port"),
        ("v4_database:\n  dsn: 'host=x user=y'\n", 2, "postgresql:// URL"),
        ("v4_database:\n  dsn: 'postgresql://x/y'\n  secret: s\n", 3, "either dsn"),
        ("v4_database:\n  secrets: s\n", 2, "unknown setting 'v4_database.secrets'"),
        ("v4_database:\n  secret: [a]\n", 2, "expected a string"),
    ],
)
def test_a_wrong_database_target_names_its_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_file(write(tmp_path, text))
    assert f"line {line}:" in str(err.value)
    assert words in str(err.value)
    assert "pw" not in str(err.value).replace(str(tmp_path), "")
