"""Runbook step 1: the v5 standby cluster built from the live v4 ``Pgcluster``, and its checks.

:func:`build_standby` turns the v4 object (as the API returns it) and the decoded data of v4's
``<c>-backrest-repo-config`` Secret into two documents:

- the pgBackRest configuration Secret ``<v5>-pgbackrest-secret``, mounted by the v5 operator
  under ``/etc/pgbackrest/conf.d``: for S3 ``s3.conf`` (``repo1-s3-key``, ``repo1-s3-key-secret``)
  and, when v4 has a CA certificate, ``s3-ca.crt``; for GCS ``gcs.conf`` and the key ``gcs.json``;
- the v5 cluster (``IvoryCluster`` or ``PostgresCluster``) in standby mode, reading v4's repo:
  the same bucket, endpoint, region and ``repo1-path``, the same PostgreSQL major and port, one
  instance set with v4's replica count plus the primary and v4's volume size.

The Secret's values are written in ``stringData``, in plain text: the API server stores them as
``data`` on write, and a GitOps repository (under whatever encryption it uses) stays readable.
:meth:`StandbyManifest.redacted` replaces every value taken from v4's Secret with a placeholder
``<from v4 Secret hippo-backrest-repo-config: aws-s3-key>``; that is what is shown and printed
unless the values are asked for.

The cluster lists ``users: [{name: postgres}]``: the v5 operator then keeps the superuser's
connection Secret ``<v5>-pguser-postgres`` (which step 6 connects with) and creates no extra
user and database named after the cluster. Nothing else of v4's configuration is carried over,
as the reference procedure says; :attr:`StandbyManifest.warnings` names what needs a look.

:func:`validate_edited` checks the text an engineer brings back from ``$EDITOR``.
PyYAML is imported only by the functions that read or write YAML.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from ivytui.domain.flavor import V4_RESOURCE, Flavor, v4_repo_config_secret_name
from ivytui.domain.kube_objects import v4_state_from_object
from ivytui.errors import IvyError

if TYPE_CHECKING:
    import yaml

REPO_NAME = "repo1"
INSTANCE_NAME = "instance1"
CONF_DIR = "/etc/pgbackrest/conf.d"
SOURCE_ANNOTATION = "ivytui/v4-source"
"""Annotation on both documents: ``<namespace>/<cluster>`` of the v4 cluster they copy."""

V4_S3_KEY = "aws-s3-key"
V4_S3_KEY_SECRET = "aws-s3-key-secret"
V4_S3_CA = "aws-s3-ca.crt"
V4_GCS_KEY = "gcs-key"

S3_CONF = "s3.conf"
S3_CA_FILE = "s3-ca.crt"
GCS_CONF = "gcs.conf"
GCS_KEY_FILE = "gcs.json"

DEFAULT_PORT = 5432
DEFAULT_S3_ENDPOINT = "s3.amazonaws.com"
DEFAULT_S3_REGION = "us-east-1"
DEFAULT_GCS_KEY_TYPE = "service"
MIN_PG_MAJOR = 10

_VOLUME_TYPES = frozenset({"posix", "local"})
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_VERSION = re.compile(r"(\d+)((?:\.\d+)*)")
_YAML_11_WORDS = frozenset({"y", "Y", "n", "N", "yes", "Yes", "YES", "no", "No", "NO"})

Storage = Literal["s3", "gcs"]


class ManifestError(IvyError):
    """A v4 cluster that cannot make a standby, or an edited manifest that is not one."""

    title = "standby manifest"


def pgbackrest_secret_name(v5_name: str) -> str:
    """The standby's pgBackRest configuration Secret, ``<v5>-pgbackrest-secret``."""
    return f"{v5_name}-pgbackrest-secret"


def placeholder(v4_secret: str, key: str) -> str:
    """What stands for a value of v4's Secret when it is not shown."""
    return f"<from v4 Secret {v4_secret}: {key}>"


# --------------------------------------------------------------------------------------------
# The manifest


@dataclass(frozen=True, slots=True)
class StandbyManifest:
    """The standby's two documents (Secret, then cluster) and what the engineer should check.

    ``secret`` and ``placeholders`` are left out of ``repr`` so that no value reaches a log.
    """

    cluster: dict[str, Any]
    secret: dict[str, Any] = field(repr=False)
    warnings: tuple[str, ...] = ()
    placeholders: dict[str, str] = field(default_factory=dict, repr=False)
    """The Secret's ``stringData`` with every value from v4's Secret replaced by a placeholder."""

    @property
    def name(self) -> str:
        return str(self.cluster["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.cluster["metadata"]["namespace"])

    @property
    def secret_name(self) -> str:
        return str(self.secret["metadata"]["name"])

    @property
    def is_redacted(self) -> bool:
        """True when the Secret holds placeholders only (nothing from v4's Secret)."""
        return dict(self.secret.get("stringData") or {}) == self.placeholders

    def redacted(self) -> StandbyManifest:
        """A copy whose Secret holds the placeholders instead of v4's values."""
        secret = copy.deepcopy(self.secret)
        secret["stringData"] = dict(self.placeholders)
        return replace(self, secret=secret)

    def documents(self) -> list[dict[str, Any]]:
        """Copies of the documents in the order to apply them: the Secret, then the cluster."""
        return [copy.deepcopy(self.secret), copy.deepcopy(self.cluster)]

    def to_yaml(self) -> str:
        """The documents as multi-document YAML (each starts with ``---``), keys as built."""
        return dump_yaml(self.documents())

    def with_edited(self, documents: Sequence[Mapping[str, Any]]) -> StandbyManifest:
        """The manifest after an ``$EDITOR`` round trip (``documents`` from
        :func:`validate_edited`).

        The cluster is the edited one. A Secret value left as its placeholder keeps this
        manifest's value (so a redacted copy can be edited without ever showing the values);
        anything else in the edited Secret is taken as written. Without a Secret document the
        Secret stays as it is.
        """
        cluster = self.cluster
        secret = self.secret
        for doc in documents:
            if doc.get("kind") == "Secret":
                edited = copy.deepcopy(dict(doc))
                given = edited.get("stringData")
                if isinstance(given, Mapping):
                    current = self.secret.get("stringData") or {}
                    edited["stringData"] = {
                        str(key): (
                            current[key]
                            if key in current and value == self.placeholders.get(key)
                            else value
                        )
                        for key, value in given.items()
                    }
                secret = edited
            else:
                cluster = copy.deepcopy(dict(doc))
        return replace(self, cluster=cluster, secret=secret)


def dump_yaml(documents: Sequence[Mapping[str, Any]]) -> str:
    """Documents as YAML: keys in their order, multi-line text as ``|`` blocks, and the words
    that YAML 1.1 readers (kubectl's among them) take for booleans, such as ``n``, quoted."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        style: str | None = None
        if "\n" in data:
            style = "|"
        elif data in _YAML_11_WORDS:
            style = '"'
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    _Dumper.add_representer(str, _represent_str)
    return yaml.dump_all(
        [dict(doc) for doc in documents],
        Dumper=_Dumper,
        sort_keys=False,
        explicit_start=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
    )


# --------------------------------------------------------------------------------------------
# Building it from v4


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool | Mapping | list):
        return None
    text = str(value).strip()
    return text or None


def check_v5_name(name: str) -> None:
    """Raise :class:`ManifestError` unless ``name`` can name a v5 cluster.

    The operator names Services after the cluster (``<name>-primary``), so the name must be a
    DNS-1035 label: lowercase letters, digits and ``-``, starting with a letter.
    """
    if len(name) > 63 or _DNS_1035.fullmatch(name) is None:
        raise ManifestError(
            f"v5 name {name!r} is not a valid DNS-1123 name: use at most 63 lowercase letters, "
            "digits and '-', starting with a letter and ending with a letter or digit"
        )


def _check_namespace(namespace: str) -> None:
    if len(namespace) > 63 or _DNS_1123.fullmatch(namespace) is None:
        raise ManifestError(
            f"namespace {namespace!r} is not a valid DNS-1123 label: use at most 63 lowercase "
            "letters, digits and '-', starting and ending with a letter or digit"
        )


def _pg_major(tag: str | None, cluster: str) -> int:
    """The PostgreSQL major in ``ccpimagetag``: ``<os>-<pg>-<pgo>`` or, for the PostGIS images,
    ``<os>-<pg>-<postgis>-<pgo>``; the first dash-separated part that is a version number."""
    shape = "expected <os>-<postgresql>-<operator>, e.g. centos8-13.4-4.7.3"
    if not tag:
        raise ManifestError(
            f"v4 cluster {cluster} has no ccpimagetag: the PostgreSQL version is unknown ({shape})"
        )
    from ivytui.domain.kube_objects import parse_ccp_image_tag

    found = parse_ccp_image_tag(tag)
    if found is not None:
        major, part = found, tag.split("-")[1]
        if major < MIN_PG_MAJOR:
            raise ManifestError(
                f"v4 cluster {cluster} runs PostgreSQL {part} (ccpimagetag {tag}): "
                f"operator v5 needs PostgreSQL {MIN_PG_MAJOR} or later; upgrade it on v4 first"
            )
        return major
    raise ManifestError(
        f"v4 cluster {cluster}'s ccpimagetag {tag!r} names no PostgreSQL version ({shape})"
    )


def _storage(types: tuple[str, ...], cluster: str, warnings: list[str]) -> Storage:
    if "s3" in types:
        if "gcs" in types:
            warnings.append(f"v4 cluster {cluster} keeps repos in s3 and gcs: the standby reads s3")
        elif _VOLUME_TYPES.intersection(types):
            warnings.append(
                f"v4 cluster {cluster} also keeps a repo on a volume (posix): "
                "the standby reads the s3 one"
            )
        return "s3"
    if "gcs" in types:
        if _VOLUME_TYPES.intersection(types):
            warnings.append(
                f"v4 cluster {cluster} also keeps a repo on a volume (posix): "
                "the standby reads the gcs one"
            )
        return "gcs"
    if not types:
        raise ManifestError(
            f"v4 cluster {cluster} keeps its repo on a volume (posix, the default when "
            "backrestStorageTypes is empty): a repo-based standby needs s3 or gcs"
        )
    if set(types) <= _VOLUME_TYPES:
        raise ManifestError(
            f"v4 cluster {cluster} keeps its repo on a volume (posix): "
            "a repo-based standby needs s3 or gcs"
        )
    raise ManifestError(
        f"v4 cluster {cluster} has storage type {','.join(types)}: "
        "a repo-based standby needs s3 or gcs"
    )


def _port(spec: Mapping[str, Any], cluster: str) -> int:
    raw = spec.get("port")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return DEFAULT_PORT
    try:
        port = int(str(raw).strip())
    except ValueError:
        port = 0
    if isinstance(raw, bool) or not 0 < port < 65536:
        raise ManifestError(f"v4 cluster {cluster}'s port {raw!r} is not a port number")
    return port


def _volume_claim(spec: Mapping[str, Any], cluster: str) -> dict[str, Any]:
    storage = _map(spec.get("PrimaryStorage"))
    size = _text(storage.get("size"))
    if size is None:
        raise ManifestError(
            f"v4 cluster {cluster} has no spec.PrimaryStorage.size: "
            "the standby's volume cannot be sized like v4's"
        )
    claim: dict[str, Any] = {"accessModes": [_text(storage.get("accessmode")) or "ReadWriteOnce"]}
    storage_class = _text(storage.get("storageclass"))
    if storage_class is not None:
        claim["storageClassName"] = storage_class
    # v4 gave this size to its PVC as it is, so it is already a Kubernetes quantity ("1G").
    claim["resources"] = {"requests": {"storage": size}}
    return claim


def _secret_value(
    secret: Mapping[str, str], key: str, v4_secret: str, cluster: str, *, one_line: bool
) -> str:
    value = secret.get(key)
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise ManifestError(
            f"v4 Secret {v4_secret} has no {key}: the standby could not read "
            f"v4 cluster {cluster}'s repo"
        )
    if one_line and any(ch.isspace() for ch in text):
        raise ManifestError(
            f"v4 Secret {v4_secret}'s {key} holds whitespace inside: it cannot be written "
            "into a pgBackRest configuration file"
        )
    assert isinstance(value, str)
    return text if one_line else value


def _extra_warnings(spec: Mapping[str, Any], cluster: str, warnings: list[str]) -> None:
    tablespaces = sorted(str(name) for name in _map(spec.get("tablespaceMounts")))
    if tablespaces:
        warnings.append(
            f"v4 cluster {cluster} has tablespaces ({', '.join(tablespaces)}): add them as "
            "spec.instances[].tablespaceVolumes, or the standby's restore fails"
        )
    bouncer = _map(spec.get("pgBouncer"))
    try:
        bouncers = int(str(bouncer.get("replicas", 0)).strip() or 0)
    except ValueError:
        bouncers = 0
    if bouncers > 0:
        warnings.append(
            f"v4 cluster {cluster} runs pgBouncer: the standby has none; add spec.proxy.pgBouncer "
            "if clients connect through it"
        )


def build_standby(
    v4_object: Mapping[str, Any],
    v4_repo_secret: Mapping[str, str] | None,
    *,
    flavor: Flavor,
    v5_name: str,
    namespace: str,
    include_secrets: bool,
) -> StandbyManifest:
    """The v5 standby for ``v4_object``, in ``namespace`` under ``v5_name``.

    ``v4_repo_secret`` is the decoded data of v4's ``<c>-backrest-repo-config`` Secret, or
    ``None`` when it was not read. With ``include_secrets`` the Secret carries v4's values (the
    Secret must then be given); without, it carries the placeholders and the values are never
    read. A Secret that is given is always checked for the keys the standby needs.

    Raises :class:`ManifestError` (one line) for a v4 cluster that cannot make a standby.
    """
    check_v5_name(v5_name)
    _check_namespace(namespace)
    kind = v4_object.get("kind")
    if kind is not None and kind != V4_RESOURCE.kind:
        raise ManifestError(f"the object is a {kind}, not a v4 {V4_RESOURCE.kind}")
    metadata = _map(v4_object.get("metadata"))
    cluster = _text(metadata.get("name"))
    if cluster is None:
        raise ManifestError("the v4 Pgcluster object has no metadata.name")
    v4_namespace = _text(metadata.get("namespace")) or namespace
    spec = _map(v4_object.get("spec"))
    v4 = v4_state_from_object(v4_object, name=cluster, namespace=v4_namespace, observed_at=0.0)
    v4_secret = v4_repo_config_secret_name(cluster)
    warnings: list[str] = []

    storage = _storage(v4.storage_types, cluster, warnings)
    pg_major = _pg_major(v4.image_tag, cluster)
    port = _port(spec, cluster)
    claim = _volume_claim(spec, cluster)
    replicas = 1 + max(v4.replicas or 0, 0)

    if include_secrets and v4_repo_secret is None:
        raise ManifestError(
            f"the values of v4 Secret {v4_secret} were asked for but the Secret was not read"
        )
    secret_in = v4_repo_secret or {}

    global_opts: dict[str, str] = {f"{REPO_NAME}-path": v4.repo_path}
    repo: dict[str, Any] = {"name": REPO_NAME}
    values: dict[str, str] = {}
    hidden: dict[str, str] = {}

    if storage == "s3":
        bucket = v4.s3_bucket
        if bucket is None:
            raise ManifestError(
                f"v4 cluster {cluster} sets no backrestS3Bucket: the standby has no bucket to read"
            )
        endpoint = v4.s3_endpoint
        if endpoint is None:
            endpoint = DEFAULT_S3_ENDPOINT
            warnings.append(
                f"v4 cluster {cluster} sets no backrestS3Endpoint: using {endpoint}; check the "
                "endpoint v4's operator configuration gave it"
            )
        region = v4.s3_region
        if region is None:
            region = DEFAULT_S3_REGION
            warnings.append(
                f"v4 cluster {cluster} sets no backrestS3Region: using {region}; check the "
                "region v4's operator configuration gave it"
            )
        repo["s3"] = {"bucket": bucket, "endpoint": endpoint, "region": region}
        uri_style = v4.s3_uri_style
        if uri_style is not None:
            if uri_style.lower() not in ("host", "path"):
                raise ManifestError(
                    f"v4 cluster {cluster}'s backrestS3URIStyle {uri_style!r} is neither host "
                    "nor path"
                )
            global_opts[f"{REPO_NAME}-s3-uri-style"] = uri_style.lower()
        raw_verify = spec.get("backrestS3VerifyTLS")
        if v4.s3_verify_tls is None and _text(raw_verify) is not None:
            raise ManifestError(
                f"v4 cluster {cluster}'s backrestS3VerifyTLS {raw_verify!r} is neither "
                '"true" nor "false"'
            )
        if v4.s3_verify_tls is False:
            global_opts[f"{REPO_NAME}-storage-verify-tls"] = "n"
            warnings.append(
                "v4's backrestS3VerifyTLS is false: TLS verification is turned off for the "
                "standby too"
            )
        has_ca = bool(str(secret_in.get(V4_S3_CA) or "").strip())
        if v4_repo_secret is not None:
            values[V4_S3_KEY] = _secret_value(
                secret_in, V4_S3_KEY, v4_secret, cluster, one_line=True
            )
            values[V4_S3_KEY_SECRET] = _secret_value(
                secret_in, V4_S3_KEY_SECRET, v4_secret, cluster, one_line=True
            )
            if has_ca:
                values[V4_S3_CA] = _secret_value(
                    secret_in, V4_S3_CA, v4_secret, cluster, one_line=False
                )
        else:
            warnings.append(
                f"v4 Secret {v4_secret} was not read: the placeholders assume it holds "
                f"{V4_S3_KEY} and {V4_S3_KEY_SECRET} and no {V4_S3_CA}"
            )
        if has_ca:
            global_opts[f"{REPO_NAME}-storage-ca-file"] = f"{CONF_DIR}/{S3_CA_FILE}"

        def s3_data(value: Mapping[str, str]) -> dict[str, str]:
            data = {
                S3_CONF: (
                    "[global]\n"
                    f"{REPO_NAME}-s3-key={value[V4_S3_KEY]}\n"
                    f"{REPO_NAME}-s3-key-secret={value[V4_S3_KEY_SECRET]}\n"
                )
            }
            if has_ca:
                data[S3_CA_FILE] = value[V4_S3_CA]
            return data

        hidden = s3_data(
            {k: placeholder(v4_secret, k) for k in (V4_S3_KEY, V4_S3_KEY_SECRET, V4_S3_CA)}
        )
        string_data = s3_data(values) if include_secrets else dict(hidden)
    else:
        bucket = v4.gcs_bucket
        if bucket is None:
            raise ManifestError(
                f"v4 cluster {cluster} sets no backrestGCSBucket: the standby has no bucket to read"
            )
        repo["gcs"] = {"bucket": bucket}
        if v4.gcs_endpoint is not None:
            global_opts[f"{REPO_NAME}-gcs-endpoint"] = v4.gcs_endpoint
        key_type = (v4.gcs_key_type or DEFAULT_GCS_KEY_TYPE).lower()
        if key_type != DEFAULT_GCS_KEY_TYPE:
            global_opts[f"{REPO_NAME}-gcs-key-type"] = key_type
        if v4_repo_secret is not None:
            values[V4_GCS_KEY] = _secret_value(
                secret_in, V4_GCS_KEY, v4_secret, cluster, one_line=False
            )

        def gcs_data(value: Mapping[str, str]) -> dict[str, str]:
            return {
                GCS_CONF: f"[global]\n{REPO_NAME}-gcs-key={CONF_DIR}/{GCS_KEY_FILE}\n",
                GCS_KEY_FILE: value[V4_GCS_KEY],
            }

        hidden = gcs_data({V4_GCS_KEY: placeholder(v4_secret, V4_GCS_KEY)})
        string_data = gcs_data(values) if include_secrets else dict(hidden)

    _extra_warnings(spec, cluster, warnings)

    source = {SOURCE_ANNOTATION: f"{v4_namespace}/{cluster}"}
    secret_name = pgbackrest_secret_name(v5_name)
    secret_doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name, "namespace": namespace, "annotations": dict(source)},
        "type": "Opaque",
        "stringData": string_data,
    }
    cluster_doc: dict[str, Any] = {
        "apiVersion": flavor.v5.api_version,
        "kind": flavor.v5.kind,
        "metadata": {"name": v5_name, "namespace": namespace, "annotations": dict(source)},
        "spec": {
            "postgresVersion": pg_major,
            "port": port,
            "instances": [
                {"name": INSTANCE_NAME, "replicas": replicas, "dataVolumeClaimSpec": claim}
            ],
            "users": [{"name": "postgres"}],
            "backups": {
                "pgbackrest": {
                    "repos": [repo],
                    "global": global_opts,
                    "configuration": [{"secret": {"name": secret_name}}],
                }
            },
            "standby": {"enabled": True, "repoName": REPO_NAME},
        },
    }
    return StandbyManifest(
        cluster=cluster_doc,
        secret=secret_doc,
        warnings=tuple(warnings),
        placeholders=hidden,
    )


# --------------------------------------------------------------------------------------------
# The $EDITOR round trip


def _line_of(node: yaml.Node | None, path: Sequence[str | int]) -> int | None:
    """The 1-based line of the deepest node along ``path`` that exists."""
    import yaml

    line: int | None = None
    for step in path:
        if node is None:
            break
        line = node.start_mark.line + 1
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == step:
                    child = value
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if 0 <= step < len(node.value):
                child = node.value[step]
        node = child
    if node is not None:
        line = node.start_mark.line + 1
    return line


class _Edited:
    """One document of the edited text, and how to name a field of it in an error."""

    def __init__(self, number: int, doc: Any, node: yaml.Node | None) -> None:
        self.number = number
        self.doc = doc
        self.node = node

    def title(self) -> str:
        kind = _text(_map(self.doc).get("kind")) or "document"
        name = _text(_map(_map(self.doc).get("metadata")).get("name"))
        return f"document {self.number} ({kind} {name})" if name else f"document {self.number}"

    def fail(self, path: Sequence[str | int], message: str) -> ManifestError:
        line = _line_of(self.node, path)
        where = f", line {line}" if line is not None else ""
        return ManifestError(f"{self.title()}{where}: {message}")

    def get(self, path: Sequence[str | int]) -> Any:
        value: Any = self.doc
        for step in path:
            if isinstance(step, str) and isinstance(value, Mapping):
                value = value.get(step)
            elif isinstance(step, int) and isinstance(value, list) and 0 <= step < len(value):
                value = value[step]
            else:
                return None
        return value


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def _parse(text: str) -> list[_Edited]:
    import yaml

    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        loader = yaml.SafeLoader("")
        docs = [loader.construct_document(node) for node in nodes]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = exc.problem or exc.context or "unreadable"
        raise ManifestError(f"the edited text is not valid YAML{where}: {what}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"the edited text is not valid YAML: {exc}") from None
    return [
        _Edited(number, doc, node)
        for number, (doc, node) in enumerate(zip(docs, nodes, strict=True), start=1)
        if doc is not None
    ]


def _check_cluster(item: _Edited, *, expected_name: str, namespace: str) -> None:
    def need(path: Sequence[str | int], ok: bool, message: str) -> None:
        if not ok:
            raise item.fail(path, f"{_dotted(path)} {message}")

    name = item.get(["metadata", "name"])
    need(
        ["metadata", "name"],
        name == expected_name,
        f"must be {expected_name} (found {name!r}): ivytui watches the cluster by that name",
    )
    found_ns = item.get(["metadata", "namespace"])
    need(
        ["metadata", "namespace"],
        found_ns == namespace,
        f"must be {namespace} (found {found_ns!r})",
    )
    version = item.get(["spec", "postgresVersion"])
    need(
        ["spec", "postgresVersion"],
        isinstance(version, int) and not isinstance(version, bool),
        f"must be a PostgreSQL major version number (found {version!r})",
    )
    enabled = item.get(["spec", "standby", "enabled"])
    need(
        ["spec", "standby", "enabled"],
        enabled is True,
        f"must be true (found {enabled!r}): the cluster must start as a standby of v4",
    )
    repos = item.get(["spec", "backups", "pgbackrest", "repos"])
    repo_path = ["spec", "backups", "pgbackrest", "repos"]
    need(repo_path, isinstance(repos, list) and bool(repos), "must list the repo v4 writes to")
    assert isinstance(repos, list)
    names = [_map(repo).get("name") for repo in repos]
    repo_name = item.get(["spec", "standby", "repoName"])
    need(
        ["spec", "standby", "repoName"],
        isinstance(repo_name, str) and repo_name in names,
        f"must name one of spec.backups.pgbackrest.repos ({', '.join(map(str, names))}); "
        f"found {repo_name!r}",
    )
    assert isinstance(repo_name, str)
    index = names.index(repo_name)
    repo = _map(repos[index])
    store = "s3" if "s3" in repo else "gcs" if "gcs" in repo else None
    need(
        [*repo_path, index],
        store is not None,
        "must be an s3 or gcs repo: a repo-based standby reads v4's object storage",
    )
    assert store is not None
    bucket = _map(repo.get(store)).get("bucket")
    need(
        [*repo_path, index, store, "bucket"],
        isinstance(bucket, str) and bool(bucket.strip()),
        "must name v4's bucket",
    )
    if store == "s3":
        for key in ("endpoint", "region"):
            value = _map(repo.get("s3")).get(key)
            need(
                [*repo_path, index, "s3", key],
                isinstance(value, str) and bool(value.strip()),
                "must be set",
            )
    path_key = f"{repo_name}-path"
    repo_dir = item.get(["spec", "backups", "pgbackrest", "global", path_key])
    need(
        ["spec", "backups", "pgbackrest", "global", path_key],
        isinstance(repo_dir, str) and bool(repo_dir.strip()),
        "must be v4's repo path (e.g. /backrestrepo/<cluster>-backrest-shared-repo)",
    )


def validate_edited(
    text: str, *, flavor: Flavor, expected_name: str, namespace: str
) -> list[dict[str, Any]]:
    """The documents of an edited standby manifest, checked; :class:`ManifestError` (naming
    the document, its line and the field) when they cannot be applied as the standby.

    Expected: exactly one cluster of ``flavor`` named ``expected_name`` in ``namespace``, still
    a standby (``spec.standby.enabled: true``) whose ``repoName`` names an s3 or gcs repo with a
    bucket and a ``<repo>-path``; at most one ``v1`` Secret, in the same namespace and named in
    ``spec.backups.pgbackrest.configuration``. Documents come back in the order written.
    """
    items = _parse(text)
    if not items:
        raise ManifestError("the edited text holds no document")
    clusters: list[_Edited] = []
    secrets: list[_Edited] = []
    for item in items:
        if not isinstance(item.doc, Mapping):
            raise item.fail([], "is not a mapping of fields")
        kind = item.doc.get("kind")
        api_version = item.doc.get("apiVersion")
        if kind == flavor.v5.kind:
            if api_version != flavor.v5.api_version:
                raise item.fail(
                    ["apiVersion"],
                    f"apiVersion must be {flavor.v5.api_version} (found {api_version!r})",
                )
            clusters.append(item)
        elif kind == "Secret":
            if api_version != "v1":
                raise item.fail(["apiVersion"], f"apiVersion must be v1 (found {api_version!r})")
            secrets.append(item)
        else:
            raise item.fail(
                ["kind"],
                f"kind {kind!r} is not expected: the text holds the pgBackRest Secret and "
                f"the {flavor.v5.kind} only",
            )
    if len(clusters) != 1:
        raise ManifestError(
            f"the edited text must hold exactly one {flavor.v5.kind} (found {len(clusters)})"
        )
    if len(secrets) > 1:
        raise secrets[1].fail([], "is a second Secret: the text holds one pgBackRest Secret")
    cluster = clusters[0]
    _check_cluster(cluster, expected_name=expected_name, namespace=namespace)
    configured = [
        _map(_map(conf).get("secret")).get("name")
        for conf in cluster.get(["spec", "backups", "pgbackrest", "configuration"]) or ()
    ]
    for secret in secrets:
        name = secret.get(["metadata", "name"])
        if not isinstance(name, str) or name not in configured:
            raise secret.fail(
                ["metadata", "name"],
                f"metadata.name {name!r} is not in the {flavor.v5.kind}'s "
                "spec.backups.pgbackrest.configuration: the standby would not read it",
            )
        found_ns = secret.get(["metadata", "namespace"])
        if found_ns != namespace:
            raise secret.fail(
                ["metadata", "namespace"],
                f"metadata.namespace must be {namespace} (found {found_ns!r})",
            )
    return [copy.deepcopy(dict(item.doc)) for item in items]
