from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from domain_factory import NOW, SYSTEM_ID, preflight, standby
from hypothesis import given
from hypothesis import strategies as st

from ivytui.domain.flavor import (
    FLAVORS,
    IVYO,
    PGO,
    V4_RESOURCE,
    flavor_named,
    v4_default_repo_path,
    v4_user_secret_name,
)
from ivytui.domain.kube_objects import (
    parse_ccp_image_tag,
    v4_pod_info,
    v4_state_from_object,
    v5_pod_info,
    v5_state_from_object,
)
from ivytui.domain.lsn import Lsn
from ivytui.domain.model import (
    Marks,
    MarksFormatError,
    PodInfo,
    Snapshot,
    V4Database,
    V4LastSeen,
    pg_major_of,
    repo_url,
)
from ivytui.errors import ConfigError

V4_OBJECT: dict[str, Any] = {
    "apiVersion": "crunchydata.com/v1",
    "kind": "Pgcluster",
    "metadata": {
        "name": "hippo",
        "namespace": "pgo",
        "resourceVersion": "48213",
        "annotations": {"current-primary": "hippo"},
        "labels": {"pg-cluster": "hippo", "vendor": "crunchydata"},
    },
    "spec": {
        "name": "hippo",
        "clustername": "hippo",
        "ccpimagetag": "centos8-13.4-4.7.3",
        "port": "5432",
        "replicas": "1",
        "shutdown": False,
        "backrestStorageTypes": ["posix", "s3"],
        "backrestS3Bucket": "hippo-backups",
        "backrestS3Endpoint": "minio.storage:9000",
        "backrestS3Region": "us-east-1",
        "backrestS3URIStyle": "path",
        "backrestS3VerifyTLS": "false",
    },
    "status": {"state": "pgcluster Initialized", "message": "Cluster has been initialized"},
}


def pod(
    name: str,
    labels: dict[str, str],
    *,
    phase: str = "Running",
    ready: bool = True,
    deleting: bool = False,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-25T15:00:00Z"
    return {
        "metadata": metadata,
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_v4_state_from_object() -> None:
    pods = [
        v4_pod_info(
            pod(
                "hippo-7d9f-abc",
                {"pg-cluster": "hippo", "pgo-pg-database": "true", "role": "master"},
            )
        ),
        v4_pod_info(pod("hippo-backrest-shared-repo-x", {"pgo-backrest-repo": "true"})),
        v4_pod_info(pod("hippo-pgbouncer-y", {"crunchy-pgbouncer": "true"}, deleting=True)),
        v4_pod_info(
            pod("hippo-full-backup-z", {"pgo-backrest": "true"}, phase="Succeeded", ready=False)
        ),
    ]
    v4 = v4_state_from_object(
        V4_OBJECT,
        name="hippo",
        namespace="pgo",
        observed_at=NOW,
        pods=pods,
        backup_schedules=["hippo-full-daily"],
    )
    assert v4.exists and v4.state == "pgcluster Initialized" and not v4.shutdown
    assert v4.storage_types == ("posix", "s3")
    assert v4.object_storage == "s3"
    assert (v4.bucket, v4.endpoint, v4.region) == (
        "hippo-backups",
        "minio.storage:9000",
        "us-east-1",
    )
    assert (v4.uri_style, v4.verify_tls) == ("path", False)
    assert v4.repo_path == "/backrestrepo/hippo-backrest-shared-repo"
    assert v4.repo_url == "s3://hippo-backups/backrestrepo/hippo-backrest-shared-repo"
    assert (v4.pg_major, v4.port, v4.replicas) == (13, 5432, 1)
    assert v4.resource_version == "48213"
    assert v4.current_primary == "hippo"
    assert [p.kind for p in v4.pods] == ["database", "repo-host", "pgbouncer", "other"]
    assert v4.pods[2].deleting and not v4.pods[0].deleting
    assert [p.name for p in v4.database_pods] == ["hippo-7d9f-abc"]
    primary = v4.primary_pod
    assert primary is not None and primary.is_primary
    assert primary.describe() == "pod hippo-7d9f-abc (primary, Running)"
    assert v4.backup_schedules == ("hippo-full-daily",)


def test_v4_variants() -> None:
    legacy = {
        "metadata": {"name": "zebra"},
        "spec": {
            "userlabels": {"backrest-storage-type": "local,gcs"},
            "backrestGCSBucket": "zebra-gcs",
            "backrestRepoPath": "/custom/path",
            "shutdown": True,
        },
        "status": {"state": "pgcluster Shutdown"},
    }
    v4 = v4_state_from_object(legacy, name="zebra", namespace="db", observed_at=NOW)
    assert v4.storage_types == ("local", "gcs")
    assert v4.object_storage == "gcs"
    assert v4.repo_url == "gs://zebra-gcs/custom/path"
    assert v4.shutdown and v4.state == "pgcluster Shutdown"
    assert v4.namespace == "db"
    assert v4.pg_major is None
    gone = v4_state_from_object(None, name="zebra", namespace="db", observed_at=NOW)
    assert not gone.exists and gone.name == "zebra"


@pytest.mark.parametrize(
    ("tag", "major"),
    [
        ("centos8-13.4-4.7.3", 13),
        ("ubi8-14.2-4.7.10", 14),
        ("centos7-9.6.24-4.5.1", 9),
        ("rhel-8-12.9-4.6.2", 12),
        ("latest", None),
        ("", None),
        (None, None),
    ],
)
def test_ccp_image_tag(tag: str | None, major: int | None) -> None:
    assert parse_ccp_image_tag(tag) == major


def v5_object(flavor_kind: str = "IvoryCluster", standby: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "ivory-operator.ivorysql.org/v1beta1",
        "kind": flavor_kind,
        "metadata": {"name": "hippo", "namespace": "pgo", "resourceVersion": "901"},
        "spec": {
            "postgresVersion": 15,
            "standby": {"enabled": standby, "repoName": "repo1"},
            "backups": {
                "pgbackrest": {
                    "global": {
                        "repo1-path": "/backrestrepo/hippo-backrest-shared-repo",
                        "repo1-s3-uri-style": "path",
                    },
                    "repos": [
                        {
                            "name": "repo1",
                            "s3": {
                                "bucket": "hippo-backups",
                                "endpoint": "minio.storage:9000",
                                "region": "us-east-1",
                            },
                        }
                    ],
                }
            },
            "instances": [{"name": "00", "replicas": 1}],
        },
        "status": {
            "conditions": [
                {
                    "type": "PGBackRestRepoHostReady",
                    "status": "True",
                    "reason": "RepoHostReady",
                    "message": "",
                }
            ],
            "instances": [{"name": "00", "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}],
        },
    }


def test_v5_state_from_object() -> None:
    prefix = IVYO.label_prefix
    pods = [
        v5_pod_info(
            pod("hippo-00-abcd-0", {f"{prefix}data": "postgres", f"{prefix}role": "master"}), IVYO
        ),
        v5_pod_info(pod("hippo-repo-host-0", {f"{prefix}data": "pgbackrest"}), IVYO),
        v5_pod_info(pod("hippo-pgbouncer-0", {f"{prefix}role": "pgbouncer"}), IVYO),
    ]
    v5 = v5_state_from_object(
        v5_object(),
        flavor=IVYO,
        name="hippo",
        namespace="pgo",
        observed_at=NOW,
        crd_installed=True,
        pods=pods,
    )
    assert v5.exists and v5.crd_installed and v5.standby_enabled
    assert v5.kind == "IvoryCluster" and v5.postgres_version == 15
    assert v5.repo1_path == "/backrestrepo/hippo-backrest-shared-repo"
    assert v5.repo_url == "s3://hippo-backups/backrestrepo/hippo-backrest-shared-repo"
    v4 = v4_state_from_object(V4_OBJECT, name="hippo", namespace="pgo", observed_at=NOW)
    assert v5.repo_url == v4.repo_url
    condition = v5.condition("PGBackRestRepoHostReady")
    assert condition is not None and condition.status == "True"
    assert v5.instances[0].ready_replicas == 1
    assert [p.kind for p in v5.pods] == ["database", "repo-host", "pgbouncer"]
    leader = v5.leader_pod
    assert leader is not None and leader.name == "hippo-00-abcd-0"
    assert v5.pods[1].role is None
    promoted = v5_state_from_object(
        v5_object(standby=False),
        flavor=IVYO,
        name="hippo",
        namespace="pgo",
        observed_at=NOW,
        crd_installed=True,
    )
    assert promoted.standby_enabled is False
    absent = v5_state_from_object(
        None, flavor=PGO, name="hippo", namespace="pgo", observed_at=NOW, crd_installed=False
    )
    assert not absent.exists and absent.kind == "PostgresCluster"


def test_v5_labels_follow_the_flavor() -> None:
    labels = {f"{PGO.label_prefix}data": "postgres", f"{PGO.label_prefix}role": "replica"}
    assert v5_pod_info(pod("p", labels), PGO).kind == "database"
    assert v5_pod_info(pod("p", labels), IVYO).kind == "other"


def test_flavors() -> None:
    assert IVYO.v5.api_version == "ivory-operator.ivorysql.org/v1beta1"
    assert IVYO.v5.crd_name == "ivoryclusters.ivory-operator.ivorysql.org"
    assert (IVYO.v5.kind, IVYO.replication_role) == ("IvoryCluster", "_ivoryrepl")
    assert (PGO.v5.kind, PGO.v5.plural, PGO.replication_role) == (
        "PostgresCluster",
        "postgresclusters",
        "_crunchyrepl",
    )
    assert IVYO.cluster_label == "ivory-operator.ivorysql.org/cluster"
    assert PGO.role_label == "postgres-operator.crunchydata.com/role"
    assert V4_RESOURCE.api_version == "crunchydata.com/v1" and V4_RESOURCE.plural == "pgclusters"
    custom = IVYO.with_overrides(
        group="example.org", version="v1", replication_role="_repl", label_prefix="example.org"
    )
    assert custom.v5.api_version == "example.org/v1"
    assert custom.v5.kind == "IvoryCluster"
    assert custom.label("role") == "example.org/role"
    assert custom.replication_role == "_repl"
    assert flavor_named(" PGO ") is PGO and set(FLAVORS) == {"ivyo", "pgo"}
    with pytest.raises(ConfigError) as caught:
        flavor_named("crunchy")
    assert "unknown flavor 'crunchy': expected one of ivyo, pgo" == str(caught.value)
    assert v4_default_repo_path("hippo") == "/backrestrepo/hippo-backrest-shared-repo"
    assert v4_user_secret_name("hippo", "postgres") == "hippo-postgres-secret"


def test_repo_url_and_versions() -> None:
    assert repo_url("s3", "b", "/x/y/") == "s3://b/x/y"
    assert repo_url("posix", "b", "/x") is None
    assert repo_url("s3", None, "/x") is None
    assert pg_major_of(150018) == "15"
    assert pg_major_of(90624) == "9.6"
    assert pg_major_of(None) is None


def test_source_problems() -> None:
    s = preflight()
    assert s.problem("v4") is None and s.available("repo")
    errored = replace(s, v4=replace(s.v4, error="connection refused", stale_since=NOW - 12))
    assert errored.problem("v4") == (
        "the v4 cluster is not answering (connection refused, stale 12 s)"
    )
    never = replace(s, repo=replace(s.repo, observed_at=0.0))
    assert never.problem("repo") == "the repo in object storage has not answered yet"
    old = replace(s, v5=replace(s.v5, observed_at=NOW - 95))
    assert old.problem("v5") == "the v5 cluster is not answering (last answer 1 m 35 s ago)"
    stale = replace(s, marks=replace(s.marks, stale_since=NOW - 3))
    assert stale.problem("marks") == "the runbook marks is not answering (stale 3 s)"
    assert Snapshot(now=NOW).problem("v4db") == "v4's database has not answered yet"


def test_pod_description() -> None:
    p = PodInfo(name="x", kind="database", role="replica", phase="Pending", deleting=True)
    assert p.describe() == "pod x (replica, Pending, terminating)"


def test_marks_round_trip() -> None:
    marks = Marks(
        observed_at=NOW,
        target_lsn=Lsn.parse("0/5000168"),
        target_timeline=1,
        target_xid_horizon=725,
        frozen_at=NOW - 60,
        frozen_roles=(("app", -1), ("reporting", 10)),
        v4_last_seen=V4LastSeen(
            lsn=Lsn.parse("0/6000060"), timeline=1, system_id=SYSTEM_ID, at=NOW - 1, xid_horizon=726
        ),
    )
    text = marks.to_json()
    assert '"systemID":"7712122409858461008"' in text
    assert '"targetXidHorizon":"725"' in text and '"xidHorizon":"726"' in text
    assert '"frozenRoles":{"app":-1,"reporting":10}' in text
    assert Marks.from_json(text, observed_at=NOW) == marks
    assert Marks.from_json(None, observed_at=NOW) == Marks(observed_at=NOW)
    assert Marks.from_json("", observed_at=NOW).target_lsn is None


@pytest.mark.parametrize(
    "text", ["{", "[]", '{"targetLSN": "nope"}', '{"v4LastSeen": {"timeline": 1}}']
)
def test_bad_marks(text: str) -> None:
    with pytest.raises(MarksFormatError) as caught:
        Marks.from_json(text, observed_at=NOW)
    assert str(caught.value).startswith("annotation ivytui/runbook-marks is not valid")


def test_marks_follow_v4_forward_only() -> None:
    s = standby()
    marks = Marks(observed_at=NOW)
    seen = marks.with_v4_seen(s.v4db)
    assert seen.v4_last_seen == V4LastSeen(
        lsn=Lsn.parse("0/5000060"),
        timeline=1,
        system_id=SYSTEM_ID,
        at=s.v4db.observed_at,
        xid_horizon=712,
    )
    older = replace(s.v4db, current_lsn=Lsn.parse("0/4000000"))
    assert seen.with_v4_seen(older) is seen
    assert seen.with_v4_seen(V4Database(observed_at=NOW, reachable=False)) is seen
    errored = replace(s.v4db, error="boom", current_lsn=Lsn.parse("0/9000000"))
    assert seen.with_v4_seen(errored) is seen
    newer = replace(s.v4db, current_lsn=Lsn.parse("0/7000000"))
    last = seen.with_v4_seen(newer).v4_last_seen
    assert last is not None and last.lsn == Lsn.parse("0/7000000")


def test_marks_keep_the_highest_xid_horizon() -> None:
    """A commit moves the horizon; the marks keep the highest one seen, whatever the order."""
    v4db = standby().v4db
    seen = Marks(observed_at=NOW).with_v4_seen(v4db)
    committed = seen.with_v4_seen(replace(v4db, xid_horizon=713))
    assert committed.v4_last_seen is not None
    assert committed.v4_last_seen.xid_horizon == 713
    assert committed.v4_last_seen.lsn == v4db.current_lsn
    late = committed.with_v4_seen(replace(v4db, xid_horizon=712))
    assert late.v4_last_seen is not None and late.v4_last_seen.xid_horizon == 713


@given(st.lists(st.integers(0, 2**40), min_size=1, max_size=20))
def test_marks_keep_the_highest_position(positions: list[int]) -> None:
    marks = Marks(observed_at=NOW)
    base = standby().v4db
    for position in positions:
        marks = marks.with_v4_seen(replace(base, current_lsn=Lsn(position)))
    assert marks.v4_last_seen is not None
    assert marks.v4_last_seen.lsn == max(positions)
