"""Kubernetes objects (as the JSON dicts the API returns) → the domain's snapshots.

Pure functions: the Kubernetes source lists and watches, then hands the objects here.
Missing or odd fields give ``None``/defaults rather than exceptions: a half-written object is
still worth showing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ivytui.domain.flavor import (
    V4_ANNOTATION_CURRENT_PRIMARY,
    V4_LABEL_DATABASE,
    V4_LABEL_PGBOUNCER,
    V4_LABEL_REPO_HOST,
    V4_LABEL_ROLE,
    Flavor,
)
from ivytui.domain.model import (
    Condition,
    InstanceSetStatus,
    PodInfo,
    PodKind,
    V4State,
    V5Repo,
    V5State,
)

_VERSION_RE = re.compile(r"\d+(?:\.\d+)*")
_REPO_PATH_KEY_RE = re.compile(r"(repo\d+)-path")


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def parse_ccp_image_tag(tag: str | None) -> int | None:
    """The PostgreSQL major in a v4 ``ccpimagetag`` ``<os>-<pg>-<pgo>``.

    ``centos8-13.4-4.7.3`` → 13. The operating system part may hold a dash (``rhel-8-12.9-4.6.2``
    → 12) and the PostGIS images add a part (``centos8-13.4-3.1-4.7.3`` → 13): the version is the
    first dotted number before the operator's version at the end.
    """
    if not tag:
        return None
    parts = tag.strip().split("-")
    for part in parts[:-1] if len(parts) > 1 else parts:
        if "." in part and _VERSION_RE.fullmatch(part) is not None:
            return int(part.split(".")[0])
    return None


def _pod_common(obj: Mapping[str, Any]) -> tuple[str, str, bool, bool]:
    metadata = _map(obj.get("metadata"))
    status = _map(obj.get("status"))
    ready = any(
        _map(c).get("type") == "Ready" and _map(c).get("status") == "True"
        for c in status.get("conditions") or ()
    )
    return (
        _str(metadata.get("name")) or "",
        _str(status.get("phase")) or "Unknown",
        ready,
        metadata.get("deletionTimestamp") is not None,
    )


def v4_pod_kind(labels: Mapping[str, str]) -> PodKind:
    """What a v4 pod is, from its labels."""
    if labels.get(V4_LABEL_REPO_HOST) == "true":
        return "repo-host"
    if labels.get(V4_LABEL_PGBOUNCER) == "true":
        return "pgbouncer"
    if labels.get(V4_LABEL_DATABASE) == "true":
        return "database"
    return "other"


def v5_pod_kind(labels: Mapping[str, str], flavor: Flavor) -> PodKind:
    """What a v5 pod is, from its ``<prefix>data`` / ``<prefix>role`` labels."""
    data = labels.get(flavor.data_label)
    if data == "postgres":
        return "database"
    if data == "pgbackrest":
        return "repo-host"
    if labels.get(flavor.role_label) == "pgbouncer":
        return "pgbouncer"
    return "other"


def v4_pod_info(obj: Mapping[str, Any]) -> PodInfo:
    """A v4 pod (labels ``pgo-pg-database``, ``role``, ``pgo-backrest-repo``…)."""
    labels = _map(_map(obj.get("metadata")).get("labels"))
    name, phase, ready, deleting = _pod_common(obj)
    return PodInfo(
        name=name,
        kind=v4_pod_kind(labels),
        role=_str(labels.get(V4_LABEL_ROLE)),
        phase=phase,
        ready=ready,
        deleting=deleting,
    )


def v5_pod_info(obj: Mapping[str, Any], flavor: Flavor) -> PodInfo:
    """A v5 pod (labels ``<prefix>data``, ``<prefix>role``)."""
    labels = _map(_map(obj.get("metadata")).get("labels"))
    name, phase, ready, deleting = _pod_common(obj)
    kind = v5_pod_kind(labels, flavor)
    role = _str(labels.get(flavor.role_label)) if kind == "database" else None
    return PodInfo(name=name, kind=kind, role=role, phase=phase, ready=ready, deleting=deleting)


def _storage_types(spec: Mapping[str, Any]) -> tuple[str, ...]:
    types = spec.get("backrestStorageTypes")
    if isinstance(types, list) and types:
        return tuple(str(t).strip().lower() for t in types if str(t).strip())
    # PGO 4.5 kept the type in a user label, possibly comma-separated ("posix,s3").
    legacy = _str(_map(spec.get("userlabels")).get("backrest-storage-type"))
    if legacy:
        return tuple(part.strip().lower() for part in legacy.split(",") if part.strip())
    return ()


def v4_state_from_object(
    obj: Mapping[str, Any] | None,
    *,
    name: str,
    namespace: str,
    observed_at: float,
    pods: Iterable[PodInfo] = (),
    backup_schedules: Iterable[str] = (),
) -> V4State:
    """A :class:`V4State` from a ``Pgcluster`` object (``None``: it does not exist)."""
    if obj is None:
        return V4State(
            observed_at=observed_at,
            exists=False,
            name=name,
            namespace=namespace,
            pods=tuple(pods),
            backup_schedules=tuple(backup_schedules),
        )
    metadata = _map(obj.get("metadata"))
    spec = _map(obj.get("spec"))
    status = _map(obj.get("status"))
    image_tag = _str(spec.get("ccpimagetag"))
    return V4State(
        observed_at=observed_at,
        exists=True,
        name=_str(metadata.get("name")) or name,
        namespace=_str(metadata.get("namespace")) or namespace,
        state=_str(status.get("state")),
        shutdown=_bool(spec.get("shutdown")) is True,
        deleting=metadata.get("deletionTimestamp") is not None,
        storage_types=_storage_types(spec),
        s3_bucket=_str(spec.get("backrestS3Bucket")),
        s3_endpoint=_str(spec.get("backrestS3Endpoint")),
        s3_region=_str(spec.get("backrestS3Region")),
        s3_uri_style=_str(spec.get("backrestS3URIStyle")),
        s3_verify_tls=_bool(spec.get("backrestS3VerifyTLS")),
        gcs_bucket=_str(spec.get("backrestGCSBucket")),
        gcs_endpoint=_str(spec.get("backrestGCSEndpoint")),
        gcs_key_type=_str(spec.get("backrestGCSKeyType")),
        repo_path_spec=_str(spec.get("backrestRepoPath")),
        image_tag=image_tag,
        pg_major=parse_ccp_image_tag(image_tag),
        port=_int(spec.get("port")),
        replicas=_int(spec.get("replicas")),
        resource_version=_str(metadata.get("resourceVersion")),
        current_primary=_str(_map(metadata.get("annotations")).get(V4_ANNOTATION_CURRENT_PRIMARY)),
        pods=tuple(pods),
        backup_schedules=tuple(backup_schedules),
    )


def _v5_repos(pgbackrest: Mapping[str, Any]) -> tuple[V5Repo, ...]:
    repos = []
    for item in pgbackrest.get("repos") or ():
        repo = _map(item)
        repo_name = _str(repo.get("name"))
        if repo_name is None:
            continue
        for kind in ("s3", "gcs", "azure", "volume"):
            if kind in repo:
                details = _map(repo.get(kind))
                repos.append(
                    V5Repo(
                        name=repo_name,
                        type=kind,
                        bucket=_str(details.get("bucket") or details.get("container")),
                        endpoint=_str(details.get("endpoint")),
                        region=_str(details.get("region")),
                    )
                )
                break
        else:
            repos.append(V5Repo(name=repo_name, type="unknown"))
    return tuple(repos)


def v5_state_from_object(
    obj: Mapping[str, Any] | None,
    *,
    flavor: Flavor,
    name: str,
    namespace: str,
    observed_at: float,
    crd_installed: bool | None,
    pods: Iterable[PodInfo] = (),
) -> V5State:
    """A :class:`V5State` from the v5 cluster object (``None``: it does not exist)."""
    if obj is None:
        return V5State(
            observed_at=observed_at,
            crd_installed=crd_installed,
            exists=False,
            name=name,
            namespace=namespace,
            kind=flavor.v5.kind,
            pods=tuple(pods),
        )
    metadata = _map(obj.get("metadata"))
    spec = _map(obj.get("spec"))
    status = _map(obj.get("status"))
    standby = _map(spec.get("standby"))
    pgbackrest = _map(_map(spec.get("backups")).get("pgbackrest"))
    global_opts = _map(pgbackrest.get("global"))
    repo_paths = []
    for key, value in global_opts.items():
        match = _REPO_PATH_KEY_RE.fullmatch(str(key))
        if match is not None and _str(value) is not None:
            repo_paths.append((match.group(1), str(value)))
    conditions = tuple(
        Condition(
            type=_str(_map(c).get("type")) or "",
            status=_str(_map(c).get("status")) or "Unknown",
            reason=_str(_map(c).get("reason")) or "",
            message=_str(_map(c).get("message")) or "",
        )
        for c in status.get("conditions") or ()
    )
    instances = tuple(
        InstanceSetStatus(
            name=_str(_map(i).get("name")) or "",
            replicas=_int(_map(i).get("replicas")) or 0,
            ready_replicas=_int(_map(i).get("readyReplicas")) or 0,
            updated_replicas=_int(_map(i).get("updatedReplicas")) or 0,
        )
        for i in status.get("instances") or ()
    )
    return V5State(
        observed_at=observed_at,
        crd_installed=crd_installed,
        exists=True,
        name=_str(metadata.get("name")) or name,
        namespace=_str(metadata.get("namespace")) or namespace,
        kind=_str(obj.get("kind")) or flavor.v5.kind,
        deleting=metadata.get("deletionTimestamp") is not None,
        standby_enabled=_bool(standby.get("enabled")) is True,
        standby_repo_name=_str(standby.get("repoName")),
        postgres_version=_int(spec.get("postgresVersion")),
        repo_paths=tuple(sorted(repo_paths)),
        repos=_v5_repos(pgbackrest),
        conditions=conditions,
        instances=instances,
        pods=tuple(pods),
        resource_version=_str(metadata.get("resourceVersion")),
    )
