"""Kubernetes objects of the rehearsal world, shaped like the ones the real operators make."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

V4_GROUP = "crunchydata.com"
V4_VERSION = "v1"
V4_PLURAL = "pgclusters"
V4_KIND = "Pgcluster"
V4_KEY = f"{V4_PLURAL}.{V4_GROUP}"


@dataclass(frozen=True)
class SandboxFlavor:
    """The v5 operator the world plays."""

    name: str
    group: str
    version: str
    plural: str
    kind: str
    label_prefix: str
    short_names: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def label(self, name: str) -> str:
        return f"{self.label_prefix}{name}"


FLAVORS: dict[str, SandboxFlavor] = {
    "ivyo": SandboxFlavor(
        name="ivyo",
        group="ivory-operator.ivorysql.org",
        version="v1beta1",
        plural="ivoryclusters",
        kind="IvoryCluster",
        label_prefix="ivory-operator.ivorysql.org/",
        short_names=("ivc",),
    ),
    "pgo": SandboxFlavor(
        name="pgo",
        group="postgres-operator.crunchydata.com",
        version="v1beta1",
        plural="postgresclusters",
        kind="PostgresCluster",
        label_prefix="postgres-operator.crunchydata.com/",
        short_names=("postgrescluster",),
    ),
}


def b64(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def suffix(seed: str, length: int = 5) -> str:
    """A stable pod-name suffix in the alphabet Kubernetes uses for generated names."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def random_suffix(length: int = 5) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def pod(
    name: str,
    namespace: str,
    labels: dict[str, str],
    *,
    container: str,
    image: str,
    ready: bool = True,
    phase: str = "Running",
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status = "True" if ready else "False"
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "containers": [{"name": container, "image": image}],
            "nodeName": "sandbox-node-1",
        },
        "status": {
            "phase": phase,
            "podIP": "127.0.0.1",
            "hostIP": "127.0.0.1",
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": status},
                {"type": "ContainersReady", "status": status},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": [
                {
                    "name": container,
                    "image": image,
                    "imageID": f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}",
                    "containerID": f"containerd://{hashlib.sha256(name.encode()).hexdigest()}",
                    "ready": ready,
                    "restartCount": 0,
                    "started": phase == "Running",
                    "state": {"running": {}} if phase == "Running" else {"waiting": {}},
                }
            ],
        },
    }
    if owner is not None:
        obj["metadata"]["ownerReferences"] = [owner]
    return obj


def deployment(
    name: str, namespace: str, labels: dict[str, str], *, replicas: int, image: str
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": "database", "image": image}]},
            },
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
    }


def service(
    name: str, namespace: str, labels: dict[str, str], *, port: int, selector: dict[str, str]
) -> dict[str, Any]:
    # The world's servers listen on loopback, so the Service's address is the loopback address:
    # ivytui reaches a database through its Service exactly as it would through a port-forward.
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "127.0.0.1",
            "ports": [{"name": "postgres", "port": port, "protocol": "TCP", "targetPort": port}],
            "selector": dict(selector),
        },
    }


def secret(
    name: str, namespace: str, labels: dict[str, str], data: dict[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "data": {k: b64(v) for k, v in data.items()},
    }


def event(
    namespace: str,
    involved: dict[str, Any],
    *,
    reason: str,
    message: str,
    kind: str = "Normal",
    component: str,
    timestamp: str,
) -> dict[str, Any]:
    meta = involved["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion", "v1"),
            "kind": involved.get("kind", ""),
            "name": meta["name"],
            "namespace": namespace,
            "uid": meta.get("uid", ""),
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": component},
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
    }


@dataclass(frozen=True)
class V4Settings:
    """What the world puts into the v4 Pgcluster."""

    cluster: str
    namespace: str
    pg_major: int
    port: int
    bucket: str
    endpoint: str
    region: str
    repo_path: str
    storage: str = "s3"
    uri_style: str = "path"
    verify_tls: bool = False
    gcs_endpoint: str = ""


def pgcluster(s: V4Settings) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": s.cluster,
        "clustername": s.cluster,
        "ccpimage": "crunchy-postgres-ha",
        "ccpimagetag": f"centos8-{s.pg_major}.4-4.7.3",
        "database": s.cluster,
        "port": str(s.port),
        "user": "testuser",
        "replicas": "0",
        "shutdown": False,
        "backrestStorageTypes": [s.storage],
        "backrestRepoPath": s.repo_path,
        "PrimaryStorage": {"name": s.cluster, "size": "1G", "storagetype": "dynamic"},
        "BackrestStorage": {"name": "", "size": "1G", "storagetype": "dynamic"},
        "userlabels": {"pgo-version": "4.7.3"},
        "tolerations": [],
    }
    if s.storage == "s3":
        spec.update(
            {
                "backrestS3Bucket": s.bucket,
                "backrestS3Endpoint": s.endpoint,
                "backrestS3Region": s.region,
                "backrestS3URIStyle": s.uri_style,
                "backrestS3VerifyTLS": "true" if s.verify_tls else "false",
            }
        )
    else:
        spec.update(
            {
                "backrestGCSBucket": s.bucket,
                "backrestGCSEndpoint": s.gcs_endpoint or s.endpoint,
                "backrestGCSKeyType": "service",
            }
        )
    return {
        "apiVersion": f"{V4_GROUP}/{V4_VERSION}",
        "kind": V4_KIND,
        "metadata": {
            "name": s.cluster,
            "namespace": s.namespace,
            "labels": {
                "crunchy-pgha-scope": s.cluster,
                "deployment-name": s.cluster,
                "name": s.cluster,
                "pg-cluster": s.cluster,
                "pgo-version": "4.7.3",
                "pgouser": "admin",
                "vendor": "crunchydata",
            },
            "annotations": {"current-primary": s.cluster},
        },
        "spec": spec,
        "status": {"state": "pgcluster Initialized", "message": "Cluster has been initialized"},
    }


def v4_primary_labels(cluster: str) -> dict[str, str]:
    return {
        "vendor": "crunchydata",
        "pg-cluster": cluster,
        "pgo-pg-database": "true",
        "deployment-name": cluster,
        "crunchy-pgha-scope": cluster,
        "service-name": cluster,
        "role": "master",
        "pgo-version": "4.7.3",
    }


def v4_repo_labels(cluster: str) -> dict[str, str]:
    return {
        "vendor": "crunchydata",
        "pg-cluster": cluster,
        "pgo-backrest-repo": "true",
        "name": f"{cluster}-backrest-shared-repo",
        "service-name": f"{cluster}-backrest-shared-repo",
        "pgo-version": "4.7.3",
    }


def repo_conf(storage: str, access_key: str, secret_key: str) -> dict[str, str]:
    """The data of the pgBackRest ``configuration`` Secret a v5 standby names."""
    if storage == "gcs":
        return {"gcs.conf": "[global]\nrepo1-gcs-key-type=token\n"}
    return {"s3.conf": (f"[global]\nrepo1-s3-key={access_key}\nrepo1-s3-key-secret={secret_key}\n")}


def parse_backrest_conf(secret: dict[str, Any]) -> dict[str, str]:
    """Every ``key=value`` of every file in a pgBackRest configuration Secret."""
    out: dict[str, str] = {}
    for value in (secret.get("data") or {}).values():
        text = base64.b64decode(value).decode(errors="replace")
        for line in text.splitlines():
            if "=" in line and not line.lstrip().startswith(("#", "[")):
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip()
    return out


def v5_standby_manifest(
    flavor: SandboxFlavor,
    *,
    name: str,
    namespace: str,
    pg_major: int,
    bucket: str,
    endpoint: str,
    region: str,
    repo_path: str,
    uri_style: str,
    verify_tls: bool,
    config_secret: str,
    port: int = 5432,
    storage: str = "s3",
) -> dict[str, Any]:
    """The standby cluster as an engineer would write it from the reference procedure."""
    global_opts: dict[str, str] = {"repo1-path": repo_path}
    repo: dict[str, Any] = {"name": "repo1"}
    if storage == "gcs":
        repo["gcs"] = {"bucket": bucket}
        global_opts["repo1-gcs-endpoint"] = endpoint
    else:
        repo["s3"] = {"bucket": bucket, "endpoint": endpoint, "region": region}
        if uri_style:
            global_opts["repo1-s3-uri-style"] = uri_style
    if not verify_tls:
        global_opts["repo1-storage-verify-tls"] = "n"
    version_field = "postgresVersion"
    return {
        "apiVersion": flavor.api_version,
        "kind": flavor.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            version_field: pg_major,
            "port": port,
            "instances": [
                {
                    "name": "instance1",
                    "replicas": 1,
                    "dataVolumeClaimSpec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
            "backups": {
                "pgbackrest": {
                    "configuration": [{"secret": {"name": config_secret}}],
                    "global": global_opts,
                    "repos": [repo],
                }
            },
            "standby": {"enabled": True, "repoName": "repo1"},
            "users": [{"name": "postgres"}],
        },
    }
