"""The two operator flavors (IVYO and PGO): API names, labels and the replication role.

The v4 side is the same for both: ``pgclusters.crunchydata.com/v1``. Every v5 name stays
overridable (:meth:`Flavor.with_overrides`) because installations rename them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ivytui.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Resource:
    """A custom resource type: API group, version, plural and kind."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        """``group/version``, as written in a manifest's ``apiVersion``."""
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        """The CustomResourceDefinition's name, ``plural.group``."""
        return f"{self.plural}.{self.group}"


V4_RESOURCE = Resource("crunchydata.com", "v1", "pgclusters", "Pgcluster")
V4_GROUP = V4_RESOURCE.group
V4_VERSION = V4_RESOURCE.version
V4_PLURAL = V4_RESOURCE.plural

# v4 labels and annotations (PGO v4.7; IVYO v4 behaves the same).
V4_LABEL_CLUSTER = "pg-cluster"
V4_LABEL_ROLE = "role"
V4_LABEL_DATABASE = "pgo-pg-database"
V4_LABEL_REPO_HOST = "pgo-backrest-repo"
V4_LABEL_PGBOUNCER = "crunchy-pgbouncer"
V4_LABEL_SCHEDULER = "crunchy-scheduler"
V4_ANNOTATION_CURRENT_PRIMARY = "current-primary"

V4_STATE_INITIALIZED = "pgcluster Initialized"
V4_STATE_SHUTDOWN = "pgcluster Shutdown"

PRIMARY_ROLES = frozenset({"master", "primary"})

GRANTED_FUNCTIONS = (
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
)
"""The four functions the replication role must be able to execute (for pg_rewind)."""


def v4_default_repo_path(cluster: str) -> str:
    """Where v4 keeps its pgBackRest repo unless ``backrestRepoPath`` says otherwise."""
    return f"/backrestrepo/{cluster}-backrest-shared-repo"


def v4_user_secret_name(cluster: str, user: str) -> str:
    """The Secret that holds a v4 managed user's credentials, ``<cluster>-<user>-secret``."""
    return f"{cluster}-{user}-secret"


def v4_repo_config_secret_name(cluster: str) -> str:
    """The Secret with v4's object-storage keys, ``<cluster>-backrest-repo-config``."""
    return f"{cluster}-backrest-repo-config"


@dataclass(frozen=True, slots=True)
class Flavor:
    """What differs between IVYO and PGO on the v5 side."""

    key: str
    title: str
    v5: Resource
    label_prefix: str
    replication_role: str

    def label(self, name: str) -> str:
        """A v5 label key, e.g. ``label("cluster")`` → ``ivory-operator.ivorysql.org/cluster``."""
        return f"{self.label_prefix}{name}"

    @property
    def cluster_label(self) -> str:
        return self.label("cluster")

    @property
    def role_label(self) -> str:
        return self.label("role")

    @property
    def data_label(self) -> str:
        """``data=postgres`` marks instance pods, ``data=pgbackrest`` the repo host."""
        return self.label("data")

    def with_overrides(
        self,
        *,
        group: str | None = None,
        version: str | None = None,
        plural: str | None = None,
        kind: str | None = None,
        label_prefix: str | None = None,
        replication_role: str | None = None,
    ) -> Flavor:
        """A copy with some names replaced (``None`` keeps the flavor's own)."""
        v5 = Resource(
            group or self.v5.group,
            version or self.v5.version,
            plural or self.v5.plural,
            kind or self.v5.kind,
        )
        prefix = self.label_prefix if label_prefix is None else label_prefix
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return replace(
            self,
            v5=v5,
            label_prefix=prefix,
            replication_role=replication_role or self.replication_role,
        )


IVYO = Flavor(
    key="ivyo",
    title="IVYO (IvorySQL operator)",
    v5=Resource("ivory-operator.ivorysql.org", "v1beta1", "ivoryclusters", "IvoryCluster"),
    label_prefix="ivory-operator.ivorysql.org/",
    replication_role="_ivoryrepl",
)

PGO = Flavor(
    key="pgo",
    title="PGO (Crunchy Data)",
    v5=Resource(
        "postgres-operator.crunchydata.com", "v1beta1", "postgresclusters", "PostgresCluster"
    ),
    label_prefix="postgres-operator.crunchydata.com/",
    replication_role="_crunchyrepl",
)

FLAVORS: dict[str, Flavor] = {IVYO.key: IVYO, PGO.key: PGO}


def flavor_named(name: str) -> Flavor:
    """The flavor called ``name`` (``ivyo`` or ``pgo``, any case)."""
    try:
        return FLAVORS[name.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(FLAVORS))
        raise ConfigError(f"unknown flavor {name!r}: expected one of {known}") from None
