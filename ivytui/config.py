"""Settings: flags win over the config file, which wins over the environment, then the defaults.

The config file is YAML:

```yaml
cluster: hippo               # the v4 Pgcluster
namespace: pgo
flavor: ivyo                 # ivyo | pgo
v5_name: hippo
context: prod-east
interval: 2                  # seconds between polls
read_only: false
v4_database: {host: 127.0.0.1, port: 15432, user: postgres, password: ..., dbname: postgres}
# or: v4_database: {dsn: "postgresql://..."}
# or a monitor role whose password is in a Secret (keys `password`, optionally `username`),
# the address still discovered from the cluster:
#     v4_database: {user: ivytui_monitor, secret: hippo-ivytui-monitor}
v5_database: {host: 127.0.0.1, port: 25432}
repo:                        # override what is read from the v4 object
  storage: s3                # s3 | gcs
  bucket: hippo
  endpoint: s3.us-east-1.amazonaws.com
  region: us-east-1
  path: /backrestrepo/hippo-backrest-shared-repo
  uri_style: host            # host | path
  verify_tls: true
  ca_file: /etc/ssl/my-ca.pem
thresholds:
  catch_up_bytes: 67108864   # step 2 is done when v5 is within this many bytes
  archive_age_seconds: 300   # the newest archived segment is older than this: archiving is unhealthy
  stale_seconds: 10          # a source that has not answered for this long is shown stale
  repo_quiet_seconds: 30     # promotion waits until the repo got nothing new from v4 this long
flavor_overrides:            # for renamed CRDs or a custom replication role
  group: ivory-operator.ivorysql.org
  version: v1beta1
  plural: ivoryclusters
  kind: IvoryCluster
  label_prefix: ivory-operator.ivorysql.org/
  replication_role: _ivoryrepl
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ivytui.errors import ConfigError

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
SECRET_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
"""A Secret's name is a DNS subdomain: dots allowed, at most 253 characters."""


@dataclass(frozen=True)
class DatabaseTarget:
    """How to reach one PostgreSQL server; empty fields are discovered from the cluster.

    ``secret`` names a Kubernetes Secret in the cluster's namespace holding the password of the
    role to connect as (key ``password``; key ``username`` when ``user`` is not given) — a
    ``pg_monitor`` role for a monitor, instead of the superuser's Secret.
    """

    dsn: str = field(default="", repr=False)
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = field(default="", repr=False)
    dbname: str = ""
    secret: str = ""

    @property
    def explicit(self) -> bool:
        return bool(self.dsn or self.host)


@dataclass(frozen=True)
class RepoOverride:
    storage: str = ""
    bucket: str = ""
    endpoint: str = ""
    region: str = ""
    path: str = ""
    uri_style: str = ""
    verify_tls: bool | None = None
    ca_file: str = ""


@dataclass(frozen=True)
class Thresholds:
    catch_up_bytes: int = 64 * 1024 * 1024
    archive_age_seconds: float = 300.0
    stale_seconds: float = 10.0
    repo_quiet_seconds: float = 30.0


@dataclass(frozen=True)
class FlavorOverrides:
    group: str = ""
    version: str = ""
    plural: str = ""
    kind: str = ""
    label_prefix: str = ""
    replication_role: str = ""


@dataclass(frozen=True)
class Config:
    cluster: str = "hippo"
    namespace: str = ""
    flavor: str = "ivyo"
    v5_name: str = ""
    kubeconfig: str = ""
    context: str = ""
    interval: float = 2.0
    read_only: bool = False
    v4_database: DatabaseTarget = field(default_factory=DatabaseTarget)
    v5_database: DatabaseTarget = field(default_factory=DatabaseTarget)
    repo: RepoOverride = field(default_factory=RepoOverride)
    thresholds: Thresholds = field(default_factory=Thresholds)
    flavor_overrides: FlavorOverrides = field(default_factory=FlavorOverrides)
    source_timeout: float = 5.0
    config_file: str = ""

    @property
    def standby_name(self) -> str:
        return self.v5_name or self.cluster


def _check_name(what: str, value: str) -> str:
    if not NAME_RE.match(value):
        raise ConfigError(
            f"{what} {value!r} is not a valid Kubernetes name "
            "(lower case letters, digits and '-', at most 63 characters)"
        )
    return value


def _line_of(node: Any) -> int:
    return int(node.start_mark.line) + 1


def _section(cls: type[Any], node: Any, path: str, where: str) -> Any:
    """Build a dataclass from a YAML mapping node, naming the line of any bad key or value."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{where} line {_line_of(node)}: {path or 'the file'} must be a mapping")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key not in known:
            choices = ", ".join(sorted(known))
            raise ConfigError(
                f"{where} line {_line_of(key_node)}: unknown setting {path + key!r} (known: {choices})"
            )
        f = known[key]
        ftype = str(f.type)
        line = _line_of(value_node)
        lines[key] = line
        if ftype in ("DatabaseTarget", "RepoOverride", "Thresholds", "FlavorOverrides"):
            sub = {
                "DatabaseTarget": DatabaseTarget,
                "RepoOverride": RepoOverride,
                "Thresholds": Thresholds,
                "FlavorOverrides": FlavorOverrides,
            }[ftype]
            values[key] = _section(sub, value_node, f"{path}{key}.", where)
            continue
        value = yaml.safe_load(yaml.serialize(value_node)) if value_node is not None else None
        try:
            values[key] = _coerce(ftype, value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where} line {line}: {path + key}: {exc}") from None
    if cls is DatabaseTarget:
        _check_target(values, lines, path, where, _line_of(node))
    return cls(**values)


def _check_target(
    values: Mapping[str, Any], lines: Mapping[str, int], path: str, where: str, start: int
) -> None:
    """A database target's values that cannot work, with the line of the one to fix."""

    def fail(key: str, words: str) -> ConfigError:
        return ConfigError(f"{where} line {lines.get(key, start)}: {path + key}: {words}")

    port = values.get("port")
    if port is not None and not 0 < port < 65536:
        raise fail("port", f"expected a port from 1 to 65535, got {port}")
    secret = values.get("secret")
    if secret is not None:
        if not SECRET_NAME_RE.match(secret):
            raise fail(
                "secret",
                f"{secret!r} is not a valid Secret name "
                "(lower case letters, digits, '-' and '.', at most 253 characters)",
            )
        if values.get("password"):
            raise fail("password", "give the password or the Secret that holds it, not both")
    dsn = values.get("dsn")
    if dsn is not None:
        if not dsn.startswith(("postgresql://", "postgres://")):
            raise fail("dsn", "expected a postgresql:// URL")
        others = sorted(k for k in values if k != "dsn")
        if others:
            raise fail(others[0], "a DSN says everything: give either dsn or the other keys")


def _coerce(ftype: str, value: Any) -> Any:
    if ftype == "str":
        if value is None or isinstance(value, (dict, list)):
            raise ValueError("expected a string")
        return str(value)
    if ftype == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {value!r}")
        return value
    if ftype == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"expected a positive number, got {value!r}")
        return float(value)
    if ftype in ("bool", "bool | None"):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    raise ValueError(f"unsupported setting type {ftype}")


def load_file(path: str | Path) -> Config:
    import yaml

    p = Path(path).expanduser()
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {p} cannot be read: {exc.strerror}") from None
    try:
        node = yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{line}: {exc.problem or exc.context}: fix the YAML") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from None
    if node is None:
        return Config(config_file=str(p))
    cfg: Config = _section(Config, node, "", str(p))
    return replace(cfg, config_file=str(p))


def resolve(
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> Config:
    """Merge flags (None = not given), the config file, the environment and the defaults."""
    env = os.environ if env is None else env
    base = load_file(flags["config"]) if flags.get("config") else Config()
    from_env: dict[str, Any] = {}
    for key, var in (
        ("cluster", "IVYTUI_CLUSTER"),
        ("namespace", "IVYTUI_NAMESPACE"),
        ("flavor", "IVYTUI_FLAVOR"),
        ("v5_name", "IVYTUI_V5_NAME"),
    ):
        if env.get(var) and getattr(base, key) == getattr(Config(), key):
            from_env[key] = env[var]
    cfg = replace(base, **from_env)
    given = {k: v for k, v in flags.items() if v is not None and k != "config" and hasattr(cfg, k)}
    cfg = replace(cfg, **given)
    if not cfg.kubeconfig:
        cfg = replace(cfg, kubeconfig=env.get("KUBECONFIG", "").split(os.pathsep)[0])
    if cfg.flavor not in ("ivyo", "pgo"):
        raise ConfigError(f"flavor {cfg.flavor!r} is not known: use ivyo or pgo")
    _check_name("cluster name", cfg.cluster)
    if cfg.v5_name:
        _check_name("v5 cluster name", cfg.v5_name)
    if cfg.namespace:
        _check_name("namespace", cfg.namespace)
    if cfg.interval < 0.2 or cfg.interval > 3600:
        raise ConfigError(f"interval {cfg.interval} s is out of range: use 0.2 to 3600 seconds")
    return cfg
