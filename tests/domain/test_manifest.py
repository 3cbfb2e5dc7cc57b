"""Step 1's standby manifest: golden files from several v4 objects, the errors, the redaction,
the $EDITOR round trip, and agreement with the sandbox's own standby.

Set IVYTUI_UPDATE_GOLDEN=1 to rewrite the expected files from the current output.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ivytui.domain.flavor import IVYO, PGO, Flavor
from ivytui.domain.kube_objects import v5_state_from_object
from ivytui.domain.manifest import (
    SOURCE_ANNOTATION,
    ManifestError,
    StandbyManifest,
    build_standby,
    dump_yaml,
    pgbackrest_secret_name,
    placeholder,
    validate_edited,
)
from ivytui.sandbox import objects as sandbox

GOLDEN = Path(__file__).parent / "golden" / "manifest"
UPDATE = os.environ.get("IVYTUI_UPDATE_GOLDEN") == "1"

ACCESS_KEY = "AKIAV4SECRETACCESSKEY"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBv4CAsecretcertificatebody\n-----END CERTIFICATE-----\n"
GCS_JSON = (
    '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEv4gcs\\n"}'
)
SECRET_STRINGS = (ACCESS_KEY, SECRET_KEY, "MIIBv4CAsecretcertificatebody", "MIIEv4gcs")

S3_SECRET = {"aws-s3-key": ACCESS_KEY, "aws-s3-key-secret": SECRET_KEY}
S3_SECRET_CA = {**S3_SECRET, "aws-s3-ca.crt": CA_PEM}
GCS_SECRET = {"gcs-key": GCS_JSON}


def load_v4(case: str) -> dict[str, Any]:
    data = yaml.safe_load((GOLDEN / f"{case}.v4.yaml").read_text())
    assert isinstance(data, dict)
    return data


def build(
    v4: dict[str, Any],
    secret: dict[str, str] | None = None,
    *,
    flavor: Flavor = IVYO,
    v5_name: str = "hippo-v5",
    namespace: str = "pgo",
    include_secrets: bool = False,
) -> StandbyManifest:
    return build_standby(
        v4,
        secret,
        flavor=flavor,
        v5_name=v5_name,
        namespace=namespace,
        include_secrets=include_secrets,
    )


# --------------------------------------------------------------------------------------------
# golden files


@dataclass(frozen=True)
class Case:
    golden: str
    v4: str
    flavor: Flavor
    v5_name: str
    namespace: str
    secret: dict[str, str] | None
    include_secrets: bool


CASES = [
    Case("s3-minio-ivyo", "s3-minio", IVYO, "hippo-v5", "pgo", S3_SECRET_CA, True),
    Case("s3-aws-ivyo", "s3-aws", IVYO, "hippo-v5", "pgo", S3_SECRET, True),
    Case("s3-aws-pgo", "s3-aws", PGO, "hippo", "pgo", None, False),
    Case("gcs-pgo", "gcs", PGO, "rhino-v5", "db", GCS_SECRET, True),
    Case("s3-custom-path-pgo", "s3-custom-path", PGO, "zebra-v5", "gis", S3_SECRET, False),
    Case("v45-userlabels-ivyo", "v45-userlabels", IVYO, "otter-v5", "legacy", S3_SECRET, True),
]


def golden_text(manifest: StandbyManifest) -> str:
    header = "".join(f"# warning: {w}\n" for w in manifest.warnings)
    return header + manifest.redacted().to_yaml()


@pytest.mark.parametrize("case", CASES, ids=[c.golden for c in CASES])
def test_golden(case: Case) -> None:
    manifest = build_standby(
        load_v4(case.v4),
        case.secret,
        flavor=case.flavor,
        v5_name=case.v5_name,
        namespace=case.namespace,
        include_secrets=case.include_secrets,
    )
    got = golden_text(manifest)
    path = GOLDEN / f"{case.golden}.expected.yaml"
    if UPDATE:
        path.write_text(got)
    assert got == path.read_text()
    # The golden YAML reads back as the documents, and passes the $EDITOR check unchanged.
    assert list(yaml.safe_load_all(got)) == manifest.redacted().documents()
    assert (
        validate_edited(
            got, flavor=case.flavor, expected_name=case.v5_name, namespace=case.namespace
        )
        == manifest.redacted().documents()
    )
    for value in SECRET_STRINGS:
        assert value not in got


def test_golden_fields_in_words() -> None:
    """The facts the golden files hold, spelled out."""
    minio = build(load_v4("s3-minio"), S3_SECRET_CA, include_secrets=True)
    spec = minio.cluster["spec"]
    assert minio.cluster["apiVersion"] == "ivory-operator.ivorysql.org/v1beta1"
    assert minio.cluster["kind"] == "IvoryCluster"
    assert minio.cluster["metadata"]["annotations"] == {SOURCE_ANNOTATION: "pgo/hippo"}
    assert spec["postgresVersion"] == 14
    assert spec["port"] == 5432
    assert spec["instances"] == [
        {
            "name": "instance1",
            "replicas": 2,
            "dataVolumeClaimSpec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "standard",
                "resources": {"requests": {"storage": "5G"}},
            },
        }
    ]
    pgbackrest = spec["backups"]["pgbackrest"]
    assert pgbackrest["repos"] == [
        {
            "name": "repo1",
            "s3": {
                "bucket": "hippo-backups",
                "endpoint": "minio.example:9000",
                "region": "us-east-1",
            },
        }
    ]
    assert pgbackrest["global"] == {
        "repo1-path": "/backrestrepo/hippo-backrest-shared-repo",
        "repo1-s3-uri-style": "path",
        "repo1-storage-verify-tls": "n",
        "repo1-storage-ca-file": "/etc/pgbackrest/conf.d/s3-ca.crt",
    }
    assert pgbackrest["configuration"] == [{"secret": {"name": "hippo-v5-pgbackrest-secret"}}]
    assert spec["standby"] == {"enabled": True, "repoName": "repo1"}
    assert minio.secret["stringData"] == {
        "s3.conf": f"[global]\nrepo1-s3-key={ACCESS_KEY}\nrepo1-s3-key-secret={SECRET_KEY}\n",
        "s3-ca.crt": CA_PEM,
    }
    assert minio.warnings == (
        "v4's backrestS3VerifyTLS is false: TLS verification is turned off for the standby too",
    )
    # kubectl reads YAML 1.1, where a bare n is false: the option is quoted.
    assert 'repo1-storage-verify-tls: "n"' in minio.to_yaml()

    aws = build(load_v4("s3-aws"), S3_SECRET, include_secrets=True)
    assert aws.cluster["spec"]["postgresVersion"] == 13
    assert aws.cluster["spec"]["instances"][0]["replicas"] == 1
    assert aws.cluster["spec"]["backups"]["pgbackrest"]["global"] == {
        "repo1-path": "/backrestrepo/hippo-backrest-shared-repo"
    }
    assert aws.warnings == ()

    pgo = build(load_v4("s3-aws"), S3_SECRET, flavor=PGO)
    assert pgo.cluster["apiVersion"] == "postgres-operator.crunchydata.com/v1beta1"
    assert pgo.cluster["kind"] == "PostgresCluster"
    assert pgo.cluster["spec"] == aws.cluster["spec"]

    gcs = build(load_v4("gcs"), GCS_SECRET, flavor=PGO, v5_name="rhino-v5", include_secrets=True)
    assert gcs.cluster["spec"]["backups"]["pgbackrest"]["repos"] == [
        {"name": "repo1", "gcs": {"bucket": "rhino-pgbackrest"}}
    ]
    assert gcs.cluster["spec"]["backups"]["pgbackrest"]["global"] == {
        "repo1-path": "/backrestrepo/rhino-backrest-shared-repo",
        "repo1-gcs-endpoint": "storage.example:4443",
        "repo1-gcs-key-type": "token",
    }
    assert gcs.secret["stringData"] == {
        "gcs.conf": "[global]\nrepo1-gcs-key=/etc/pgbackrest/conf.d/gcs.json\n",
        "gcs.json": GCS_JSON,
    }

    custom = build(load_v4("s3-custom-path"), S3_SECRET, flavor=PGO, v5_name="zebra-v5")
    spec = custom.cluster["spec"]
    assert spec["postgresVersion"] == 13  # not the PostGIS 3.1 in the tag
    assert spec["port"] == 5433
    assert spec["instances"][0]["replicas"] == 3
    assert spec["backups"]["pgbackrest"]["global"] == {
        "repo1-path": "/pgbackrest/prod/zebra",
        "repo1-s3-uri-style": "host",
    }
    assert len(custom.warnings) == 3
    assert "tablespaces (lake)" in custom.warnings[1]
    assert "pgBouncer" in custom.warnings[2]

    legacy = build(load_v4("v45-userlabels"), S3_SECRET, v5_name="otter-v5")
    assert legacy.cluster["spec"]["postgresVersion"] == 12
    assert legacy.cluster["spec"]["port"] == 5432
    assert legacy.cluster["spec"]["backups"]["pgbackrest"]["repos"][0]["s3"] == {
        "bucket": "otter-repo",
        "endpoint": "objects.internal:443",
        "region": "eu-west-1",
    }


def test_postgresql_version_follows_the_image_tag() -> None:
    v4 = load_v4("s3-aws")
    for tag, major in [
        ("centos8-13.4-4.7.3", 13),
        ("ubi8-14.2-4.7.5", 14),
        ("centos8-12.8-3.0-4.7.3", 12),
        ("ubi8-10.20-4.7.5", 10),
        ("16.1-custom", 16),
    ]:
        v4["spec"]["ccpimagetag"] = tag
        assert build(v4, S3_SECRET).cluster["spec"]["postgresVersion"] == major, tag


def test_missing_endpoint_and_region_fall_back_with_warnings() -> None:
    v4 = load_v4("s3-aws")
    del v4["spec"]["backrestS3Endpoint"]
    del v4["spec"]["backrestS3Region"]
    manifest = build(v4, S3_SECRET)
    assert manifest.cluster["spec"]["backups"]["pgbackrest"]["repos"][0]["s3"] == {
        "bucket": "acme-pg-backups",
        "endpoint": "s3.amazonaws.com",
        "region": "us-east-1",
    }
    assert [w.split(":")[0] for w in manifest.warnings] == [
        "v4 cluster hippo sets no backrestS3Endpoint",
        "v4 cluster hippo sets no backrestS3Region",
    ]


def test_the_monitor_reads_the_built_cluster_back() -> None:
    manifest = build(load_v4("s3-minio"), S3_SECRET_CA)
    state = v5_state_from_object(
        manifest.cluster,
        flavor=IVYO,
        name="hippo-v5",
        namespace="pgo",
        observed_at=1.0,
        crd_installed=True,
    )
    assert state.standby_enabled is True
    assert state.standby_repo_name == "repo1"
    assert state.postgres_version == 14
    assert state.repo_paths == (("repo1", "/backrestrepo/hippo-backrest-shared-repo"),)
    assert [(r.name, r.type, r.bucket, r.endpoint) for r in state.repos] == [
        ("repo1", "s3", "hippo-backups", "minio.example:9000")
    ]


# --------------------------------------------------------------------------------------------
# errors: one line that says what is wrong


def one_line_error(v4: dict[str, Any], secret: dict[str, str] | None = None, **kw: Any) -> str:
    with pytest.raises(ManifestError) as err:
        build(v4, secret, **kw)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_posix_only_is_refused() -> None:
    v4 = load_v4("s3-aws")
    v4["spec"]["backrestStorageTypes"] = ["posix"]
    assert one_line_error(v4, S3_SECRET) == (
        "v4 cluster hippo keeps its repo on a volume (posix): a repo-based standby needs s3 or gcs"
    )
    del v4["spec"]["backrestStorageTypes"]
    assert "posix, the default when backrestStorageTypes is empty" in one_line_error(v4)
    legacy = load_v4("v45-userlabels")
    legacy["spec"]["userlabels"]["backrest-storage-type"] = "local"
    assert one_line_error(legacy) == (
        "v4 cluster otter keeps its repo on a volume (posix): a repo-based standby needs s3 or gcs"
    )


def test_missing_bucket_is_refused() -> None:
    v4 = load_v4("s3-aws")
    del v4["spec"]["backrestS3Bucket"]
    assert one_line_error(v4, S3_SECRET) == (
        "v4 cluster hippo sets no backrestS3Bucket: the standby has no bucket to read"
    )
    gcs = load_v4("gcs")
    gcs["spec"]["backrestGCSBucket"] = ""
    assert one_line_error(gcs, GCS_SECRET) == (
        "v4 cluster rhino sets no backrestGCSBucket: the standby has no bucket to read"
    )


@pytest.mark.parametrize("key", ["aws-s3-key", "aws-s3-key-secret"])
def test_missing_secret_key_is_named(key: str) -> None:
    secret = dict(S3_SECRET)
    del secret[key]
    for include in (True, False):
        assert one_line_error(load_v4("s3-aws"), secret, include_secrets=include) == (
            f"v4 Secret hippo-backrest-repo-config has no {key}: "
            "the standby could not read v4 cluster hippo's repo"
        )
    secret[key] = "  \n"
    assert f"has no {key}" in one_line_error(load_v4("s3-aws"), secret)


def test_missing_gcs_key_is_named() -> None:
    assert one_line_error(load_v4("gcs"), {"aws-s3-key": "x"}, include_secrets=True) == (
        "v4 Secret rhino-backrest-repo-config has no gcs-key: "
        "the standby could not read v4 cluster rhino's repo"
    )


def test_values_asked_for_need_the_secret() -> None:
    assert one_line_error(load_v4("s3-aws"), None, include_secrets=True) == (
        "the values of v4 Secret hippo-backrest-repo-config were asked for but the Secret "
        "was not read"
    )


def test_a_key_that_would_break_the_conf_file_is_refused() -> None:
    secret = {**S3_SECRET, "aws-s3-key": "AKIA\nrepo1-path=/elsewhere"}
    assert "holds whitespace inside" in one_line_error(load_v4("s3-aws"), secret)


def test_keys_are_trimmed() -> None:
    secret = {"aws-s3-key": f"{ACCESS_KEY}\n", "aws-s3-key-secret": f" {SECRET_KEY}\n"}
    manifest = build(load_v4("s3-aws"), secret, include_secrets=True)
    assert manifest.secret["stringData"]["s3.conf"] == (
        f"[global]\nrepo1-s3-key={ACCESS_KEY}\nrepo1-s3-key-secret={SECRET_KEY}\n"
    )


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (
            "latest",
            "v4 cluster hippo's ccpimagetag 'latest' names no PostgreSQL version "
            "(expected <os>-<postgresql>-<operator>, e.g. centos8-13.4-4.7.3)",
        ),
        (
            "centos7-9.6.24-4.5.4",
            "v4 cluster hippo runs PostgreSQL 9.6.24 (ccpimagetag centos7-9.6.24-4.5.4): "
            "operator v5 needs PostgreSQL 10 or later; upgrade it on v4 first",
        ),
        (
            None,
            "v4 cluster hippo has no ccpimagetag: the PostgreSQL version is unknown "
            "(expected <os>-<postgresql>-<operator>, e.g. centos8-13.4-4.7.3)",
        ),
    ],
)
def test_postgresql_version_must_be_known(tag: str | None, expected: str) -> None:
    v4 = load_v4("s3-aws")
    v4["spec"]["ccpimagetag"] = tag
    assert one_line_error(v4, S3_SECRET) == expected


@pytest.mark.parametrize("name", ["Hippo", "hippo_v5", "1hippo", "hippo-", "", "h" * 64])
def test_v5_name_must_be_valid(name: str) -> None:
    message = one_line_error(load_v4("s3-aws"), S3_SECRET, v5_name=name)
    assert message.startswith(f"v5 name {name!r} is not a valid DNS-1123 name")


def test_other_odd_v4_values_are_refused() -> None:
    v4 = load_v4("s3-aws")
    v4["spec"]["backrestS3VerifyTLS"] = "maybe"
    assert "backrestS3VerifyTLS 'maybe' is neither" in one_line_error(v4, S3_SECRET)
    v4 = load_v4("s3-aws")
    v4["spec"]["backrestS3URIStyle"] = "virtual"
    assert "backrestS3URIStyle 'virtual' is neither host nor path" in one_line_error(v4)
    v4 = load_v4("s3-aws")
    v4["spec"]["port"] = "fivefour"
    assert one_line_error(v4) == "v4 cluster hippo's port 'fivefour' is not a port number"
    v4 = load_v4("s3-aws")
    del v4["spec"]["PrimaryStorage"]
    assert "has no spec.PrimaryStorage.size" in one_line_error(v4)
    v4 = load_v4("s3-aws")
    v4["kind"] = "PostgresCluster"
    assert one_line_error(v4) == "the object is a PostgresCluster, not a v4 Pgcluster"
    assert "namespace 'Bad_NS'" in one_line_error(load_v4("s3-aws"), namespace="Bad_NS")


# --------------------------------------------------------------------------------------------
# secret values: never shown unless asked for


def test_redacted_output_holds_no_secret_value() -> None:
    for v4, secret, flavor in [
        (load_v4("s3-minio"), S3_SECRET_CA, IVYO),
        (load_v4("gcs"), GCS_SECRET, PGO),
    ]:
        full = build(v4, secret, flavor=flavor, include_secrets=True)
        shown = full.redacted()
        assert shown.is_redacted and not full.is_redacted
        full_text = full.to_yaml()
        assert any(value in full_text for value in SECRET_STRINGS)
        for text in (shown.to_yaml(), repr(full), repr(shown), str(full), "".join(full.warnings)):
            for value in SECRET_STRINGS:
                assert value not in text
        # Without include_secrets the values are never even put in.
        plain = build(v4, secret, flavor=flavor, include_secrets=False)
        assert plain.is_redacted
        assert plain == shown
        # redacted() leaves the original alone.
        assert full.to_yaml() == full_text


def test_placeholders_name_the_v4_secret_and_key() -> None:
    manifest = build(load_v4("s3-minio"), S3_SECRET_CA).redacted()
    data = manifest.secret["stringData"]
    key = placeholder("hippo-backrest-repo-config", "aws-s3-key")
    assert key == "<from v4 Secret hippo-backrest-repo-config: aws-s3-key>"
    assert data["s3.conf"] == (
        "[global]\n"
        f"repo1-s3-key={key}\n"
        "repo1-s3-key-secret=<from v4 Secret hippo-backrest-repo-config: aws-s3-key-secret>\n"
    )
    assert data["s3-ca.crt"] == "<from v4 Secret hippo-backrest-repo-config: aws-s3-ca.crt>"
    assert (
        manifest.secret_name == pgbackrest_secret_name("hippo-v5") == "hippo-v5-pgbackrest-secret"
    )


def test_unread_secret_gives_placeholders_and_says_what_they_assume() -> None:
    manifest = build(load_v4("s3-aws"), None)
    assert manifest.is_redacted
    assert manifest.warnings == (
        "v4 Secret hippo-backrest-repo-config was not read: the placeholders assume it holds "
        "aws-s3-key and aws-s3-key-secret and no aws-s3-ca.crt",
    )


def test_documents_are_copies_in_apply_order() -> None:
    manifest = build(load_v4("s3-aws"), S3_SECRET)
    docs = manifest.documents()
    assert [d["kind"] for d in docs] == ["Secret", "IvoryCluster"]
    docs[1]["spec"]["standby"]["enabled"] = False
    assert manifest.cluster["spec"]["standby"]["enabled"] is True
    assert manifest.to_yaml().startswith("---\napiVersion: v1\nkind: Secret\n")
    assert manifest.to_yaml().count("\n---\n") == 1


def test_dump_yaml_keeps_text_readable() -> None:
    text = dump_yaml([{"a": "line one\nline two\n", "b": "n", "c": "Y", "d": "no", "e": "n/a"}])
    assert text == ('---\na: |\n  line one\n  line two\nb: "n"\nc: "Y"\nd: "no"\ne: n/a\n')


# --------------------------------------------------------------------------------------------
# the $EDITOR round trip


def edited(manifest: StandbyManifest, old: str, new: str) -> str:
    text = manifest.redacted().to_yaml()
    assert text.count(old) == 1, old
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def edit_error(text: str, *, flavor: Flavor = IVYO, name: str = "hippo-v5") -> str:
    with pytest.raises(ManifestError) as err:
        validate_edited(text, flavor=flavor, expected_name=name, namespace="pgo")
    message = str(err.value)
    assert "\n" not in message
    return message


def test_edited_unchanged_passes_for_both_flavors() -> None:
    for flavor in (IVYO, PGO):
        manifest = build(load_v4("s3-minio"), S3_SECRET_CA, flavor=flavor)
        docs = validate_edited(
            manifest.to_yaml(), flavor=flavor, expected_name="hippo-v5", namespace="pgo"
        )
        assert docs == manifest.documents()


def test_edited_changed_name_is_caught() -> None:
    manifest = build(load_v4("s3-minio"), S3_SECRET_CA)
    text = edited(manifest, "  name: hippo-v5\n", "  name: hippo-new\n")
    line = line_of(text, "name: hippo-new")
    assert edit_error(text) == (
        f"document 2 (IvoryCluster hippo-new), line {line}: metadata.name must be hippo-v5 "
        "(found 'hippo-new'): ivytui watches the cluster by that name"
    )


def test_edited_standby_disabled_is_caught() -> None:
    manifest = build(load_v4("s3-minio"), S3_SECRET_CA)
    text = edited(manifest, "    enabled: true\n", "    enabled: false\n")
    line = line_of(text, "enabled: false")
    assert edit_error(text) == (
        f"document 2 (IvoryCluster hippo-v5), line {line}: spec.standby.enabled must be true "
        "(found False): the cluster must start as a standby of v4"
    )


def test_edited_broken_yaml_names_the_line() -> None:
    manifest = build(load_v4("s3-minio"), S3_SECRET_CA)
    text = edited(manifest, "  port: 5432\n", "  port: 5432\n   bad: [indent\n")
    message = edit_error(text)
    assert message.startswith("the edited text is not valid YAML at line ")
    line = int(message.split("at line ")[1].split(",")[0])
    assert line in (line_of(text, "bad: [indent"), line_of(text, "bad: [indent") + 1)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    repoName: repo1\n",
            "    repoName: repo2\n",
            "spec.standby.repoName must name one of spec.backups.pgbackrest.repos (repo1); "
            "found 'repo2'",
        ),
        (
            "        repo1-path: /backrestrepo/hippo-backrest-shared-repo\n",
            "",
            "spec.backups.pgbackrest.global.repo1-path must be v4's repo path",
        ),
        (
            "          bucket: hippo-backups\n",
            "          bucket: ''\n",
            "spec.backups.pgbackrest.repos[0].s3.bucket must name v4's bucket",
        ),
        (
            "  postgresVersion: 14\n",
            "  postgresVersion: fourteen\n",
            "spec.postgresVersion must be a PostgreSQL major version number (found 'fourteen')",
        ),
        (
            "  namespace: pgo\n  annotations:\n    ivytui/v4-source: pgo/hippo\nspec:",
            "  namespace: other\n  annotations:\n    ivytui/v4-source: pgo/hippo\nspec:",
            "metadata.namespace must be pgo (found 'other')",
        ),
    ],
)
def test_edited_standby_fields_are_checked(old: str, new: str, expected: str) -> None:
    manifest = build(load_v4("s3-minio"), S3_SECRET_CA)
    message = edit_error(edited(manifest, old, new))
    assert message.startswith("document 2 (IvoryCluster hippo-v5), line ")
    assert expected in message


def test_edited_documents_must_be_the_expected_kinds() -> None:
    manifest = build(load_v4("s3-minio"), S3_SECRET_CA)
    text = manifest.redacted().to_yaml()
    assert "kind 'PostgresCluster' is not expected" in edit_error(
        build(load_v4("s3-minio"), S3_SECRET_CA, flavor=PGO).to_yaml()
    )
    line = line_of(text, "apiVersion: ivory-operator.ivorysql.org/v1beta1")
    assert edit_error(text.replace("v1beta1", "v1")) == (
        f"document 2 (IvoryCluster hippo-v5), line {line}: apiVersion must be "
        "ivory-operator.ivorysql.org/v1beta1 (found 'ivory-operator.ivorysql.org/v1')"
    )
    assert edit_error(text.split("---\n")[1]) == (
        "the edited text must hold exactly one IvoryCluster (found 0)"
    )
    assert edit_error("") == "the edited text holds no document"
    assert "is not a mapping" in edit_error("---\n- a\n- b\n")
    renamed = text.replace("name: hippo-v5-pgbackrest-secret\n  namespace", "name: x\n  namespace")
    assert "metadata.name 'x' is not in the IvoryCluster's" in edit_error(renamed)


def test_edited_redacted_copy_keeps_the_real_values() -> None:
    manifest = build(load_v4("s3-minio"), S3_SECRET_CA, include_secrets=True)
    text = edited(manifest, "    replicas: 2\n", "    replicas: 3\n")
    docs = validate_edited(text, flavor=IVYO, expected_name="hippo-v5", namespace="pgo")
    after = manifest.with_edited(docs)
    assert after.cluster["spec"]["instances"][0]["replicas"] == 3
    assert after.secret == manifest.secret
    assert not after.is_redacted
    # A value the engineer typed in is taken as written.
    typed = text.replace(
        "'<from v4 Secret hippo-backrest-repo-config: aws-s3-ca.crt>'", "'other CA'"
    )
    docs = validate_edited(typed, flavor=IVYO, expected_name="hippo-v5", namespace="pgo")
    assert manifest.with_edited(docs).secret["stringData"]["s3-ca.crt"] == "other CA"
    assert (
        manifest.with_edited(docs).secret["stringData"]["s3.conf"]
        == (manifest.secret["stringData"]["s3.conf"])
    )


# --------------------------------------------------------------------------------------------
# agreement with the sandbox's hand-written standby


@pytest.mark.parametrize("storage", ["s3", "gcs"])
def test_agrees_with_the_sandbox_standby(storage: str) -> None:
    settings = sandbox.V4Settings(
        cluster="hippo",
        namespace="pgo",
        pg_major=15,
        port=5433,
        bucket="hippo-sandbox",
        endpoint="127.0.0.1:39123",
        region="us-east-1",
        repo_path="/backrestrepo/hippo-backrest-shared-repo",
        storage=storage,
        uri_style="path",
        verify_tls=False,
    )
    v4 = sandbox.pgcluster(settings)
    secret = GCS_SECRET if storage == "gcs" else S3_SECRET
    for key, flavor in (("ivyo", IVYO), ("pgo", PGO)):
        sandbox_flavor = sandbox.FLAVORS[key]
        mine = build_standby(
            copy.deepcopy(v4),
            secret,
            flavor=flavor,
            v5_name="hippo-v5",
            namespace="pgo",
            include_secrets=True,
        )
        theirs = sandbox.v5_standby_manifest(
            sandbox_flavor,
            name="hippo-v5",
            namespace="pgo",
            pg_major=settings.pg_major,
            bucket=settings.bucket,
            endpoint=settings.endpoint,
            region=settings.region,
            repo_path=settings.repo_path,
            uri_style=settings.uri_style,
            verify_tls=settings.verify_tls,
            config_secret=pgbackrest_secret_name("hippo-v5"),
            storage=storage,
        )
        assert mine.cluster["apiVersion"] == theirs["apiVersion"]
        assert mine.cluster["kind"] == theirs["kind"]
        for field in ("name", "namespace"):
            assert mine.cluster["metadata"][field] == theirs["metadata"][field]
        spec, their_spec = mine.cluster["spec"], theirs["spec"]
        for field in ("postgresVersion", "standby", "users"):
            assert spec[field] == their_spec[field], field
        ours_br = spec["backups"]["pgbackrest"]
        theirs_br = their_spec["backups"]["pgbackrest"]
        assert ours_br["repos"] == theirs_br["repos"]
        assert ours_br["configuration"] == theirs_br["configuration"]
        if storage == "s3":
            assert ours_br["global"] == theirs_br["global"]
        else:
            # The sandbox also turns TLS verification off for its own GCS server; v4 has no
            # such setting for GCS.
            for option in ("repo1-path", "repo1-gcs-endpoint"):
                assert ours_br["global"][option] == theirs_br["global"][option]
        # What the sandbox operator's validation reads: the repo named by the standby, its
        # bucket, its path, and a configuration Secret that is created with it.
        repo = next(r for r in ours_br["repos"] if r["name"] == spec["standby"]["repoName"])
        assert (repo.get("s3") or repo.get("gcs"))["bucket"] == settings.bucket
        assert ours_br["global"]["repo1-path"] == settings.repo_path
        assert [c["secret"]["name"] for c in ours_br["configuration"]] == [mine.secret_name]
        assert mine.secret["metadata"]["namespace"] == "pgo"
