"""Where the repo is: the config's ``repo`` section over v4's ``Pgcluster`` (or v5's standby repo
once v4 is gone), and the keys from v4's repo-config Secret or v5's pgBackRest Secrets."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ivytui.config import Config
from ivytui.domain.model import V4State, V5State
from ivytui.errors import KubeError, StorageError
from ivytui.sources.storage.base import Locate, RepoTarget

SECRET_REFRESH = 300.0


def _parse_conf_keys(text: str, repo: str) -> tuple[str, str]:
    """``repo1-s3-key=`` and ``repo1-s3-key-secret=`` from a pgBackRest ``s3.conf``."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep:
            found[name.strip()] = value.strip()
    return found.get(f"{repo}-s3-key", ""), found.get(f"{repo}-s3-key-secret", "")


def repo_locator(
    config: Config,
    kube: Any,
    v4_state: Callable[[], V4State | None],
    v5_state: Callable[[], V5State | None],
) -> Locate:
    """Where the repo is: the config's overrides over v4's spec (or v5's once v4 is gone)."""
    from ivytui.sources.kube import ObjectMissing

    ov = config.repo
    secrets: dict[str, tuple[float, dict[str, str] | None]] = {}
    remembered: list[RepoTarget] = []

    async def secret(name: str) -> dict[str, str] | None:
        """A Secret, read again every :data:`SECRET_REFRESH` seconds (keys get rotated)."""
        cached = secrets.get(name)
        if cached is None or time.monotonic() - cached[0] > SECRET_REFRESH:
            try:
                value: dict[str, str] | None = await kube.read_secret(name)
            except ObjectMissing:
                value = None
            secrets[name] = (time.monotonic(), value)
        return secrets[name][1]

    async def locate() -> RepoTarget:
        v4 = v4_state()
        v5 = v5_state()
        storage: str | None = None
        bucket = endpoint = region = uri_style = path = key_type = None
        verify: bool | None = None
        origin = ""
        if v4 is not None and v4.exists and v4.object_storage is not None:
            storage, bucket, endpoint = v4.object_storage, v4.bucket, v4.endpoint
            region, uri_style, verify = v4.region, v4.uri_style, v4.verify_tls
            path, key_type = v4.repo_path, v4.gcs_key_type
            origin = f"v4 {v4.name}"
        elif v5 is not None and v5.exists and v5.standby_repo is not None:
            repo = v5.standby_repo
            if repo.type in ("s3", "gcs"):
                storage, bucket, endpoint, region = (
                    repo.type,
                    repo.bucket,
                    repo.endpoint,
                    repo.region,
                )
                path = v5.repo1_path or f"/pgbackrest/{repo.name}"
                raw = kube.v5_object() if kube is not None else None
                opts = (
                    (raw or {})
                    .get("spec", {})
                    .get("backups", {})
                    .get("pgbackrest", {})
                    .get("global", {})
                )
                uri_style = opts.get(f"{repo.name}-s3-uri-style")
                tls = str(opts.get(f"{repo.name}-storage-verify-tls", "")).lower()
                verify = False if tls in ("n", "false", "0", "no") else None
                origin = f"v5 {v5.name}"
        if ov.storage:
            storage = ov.storage
        elif storage is None and ov.bucket:
            storage = "s3"
        bucket = ov.bucket or bucket
        endpoint = ov.endpoint or endpoint
        region = ov.region or region
        path = ov.path or path
        uri_style = ov.uri_style or uri_style
        if ov.verify_tls is not None:
            verify = ov.verify_tls
        if ov.bucket or ov.path:
            origin = "the config" + (f" and {origin}" if origin else "")
        if storage not in ("s3", "gcs") or not bucket or path is None:
            if remembered:
                return remembered[-1]
            if v4 is None:
                raise StorageError(
                    "where the repo is is not known yet: the v4 object has not been read"
                )
            if not v4.exists:
                raise StorageError(
                    f"where the repo is is not known: v4 {v4.name} does not exist, v5 names no "
                    "object-storage repo, and the config gives no repo bucket"
                )
            types = ", ".join(v4.storage_types) or "no storage type"
            raise StorageError(
                f"v4 {v4.name} keeps its repo in {types} and the config gives no bucket: "
                "a repo-based standby needs s3 or gcs"
            )
        target = RepoTarget(
            storage="gcs" if storage == "gcs" else "s3",
            bucket=bucket,
            path=path,
            endpoint=endpoint,
            region=region,
            uri_style=uri_style,
            verify=False if verify is False else (ov.ca_file or None),
            gcs_key_type=key_type,
            origin=origin,
        )
        target = await _with_credentials(target, config, kube, v4, secret)
        remembered[:] = [target]
        return target

    return locate


async def _with_credentials(
    target: RepoTarget,
    config: Config,
    kube: Any,
    v4: V4State | None,
    secret: Callable[[str], Awaitable[dict[str, str] | None]],
) -> RepoTarget:
    from dataclasses import replace

    if kube is None:
        return replace(target, credentials_origin="the environment")
    names: list[str] = []
    if v4 is not None and v4.exists:
        names.append(f"{config.cluster}-backrest-repo-config")
    raw = kube.v5_object()
    if raw is not None:
        for item in (
            raw.get("spec", {}).get("backups", {}).get("pgbackrest", {}).get("configuration") or ()
        ):
            name = (item.get("secret") or {}).get("name") if isinstance(item, Mapping) else None
            if name:
                names.append(str(name))
    for name in names:
        try:
            data = await secret(name)
        except KubeError:
            continue
        if not data:
            continue
        if target.storage == "s3":
            key, key_secret = data.get("aws-s3-key", ""), data.get("aws-s3-key-secret", "")
            if not key:
                for text in data.values():
                    key, key_secret = _parse_conf_keys(text, "repo1")
                    if key:
                        break
            if key and key_secret:
                return replace(
                    target,
                    access_key=key,
                    secret_key=key_secret,
                    ca_pem="" if target.verify is False else data.get("aws-s3-ca.crt", ""),
                    credentials_origin=f"Secret {name}",
                )
        elif data.get("gcs-key"):
            return replace(
                target,
                gcs_key=data["gcs-key"],
                ca_pem="" if target.verify is False else data.get("aws-s3-ca.crt", ""),
                credentials_origin=f"Secret {name}",
            )
    return replace(target, credentials_origin="the environment")
