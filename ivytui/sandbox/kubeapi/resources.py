"""The served resource types: built-ins, their field selectors, and CRD manifests for custom ones."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from ivytui.sandbox.kubeapi.common import Obj

CRD_KEY: Final = "customresourcedefinitions.apiextensions.k8s.io"
NAMESPACES_KEY: Final = "namespaces"


@dataclass(frozen=True)
class ResourceType:
    """One served resource: its group/version/plural, kind and scope."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    has_status: bool = False
    categories: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.plural if not self.group else f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        return self.version if not self.group else f"{self.group}/{self.version}"

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def qualified_kind(self) -> str:
        return self.kind if not self.group else f"{self.kind}.{self.group}"


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        "", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), has_status=True
    ),
    ResourceType(
        "", "v1", "pods", "Pod", short_names=("po",), has_status=True, categories=("all",)
    ),
    ResourceType(
        "", "v1", "services", "Service", short_names=("svc",), has_status=True, categories=("all",)
    ),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    ResourceType("", "v1", "events", "Event", short_names=("ev",)),
    ResourceType(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        short_names=("pvc",),
        has_status=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        has_status=True,
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        short_names=("sts",),
        has_status=True,
        categories=("all",),
    ),
    ResourceType("batch", "v1", "jobs", "Job", has_status=True, categories=("all",)),
    ResourceType(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        short_names=("cj",),
        has_status=True,
        categories=("all",),
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        has_status=True,
    ),
)
BUILTIN_KEYS: Final = frozenset(t.key for t in BUILTIN_TYPES)
BUILTIN_GROUPS: Final = tuple(dict.fromkeys(t.group for t in BUILTIN_TYPES if t.group))

FIELD_LABELS: Final[dict[str, frozenset[str]]] = {
    "pods": frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
    "events": frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
    "secrets": frozenset({"type"}),
    "namespaces": frozenset({"status.phase"}),
    "jobs.batch": frozenset({"status.successful"}),
}


def crd_manifest(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    short_names: Iterable[str] = (),
    namespaced: bool = True,
    has_status: bool = True,
) -> Obj:
    """An apiextensions.k8s.io/v1 CustomResourceDefinition that makes the emulator serve a kind."""
    served: Obj = {
        "name": version,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        },
    }
    if has_status:
        served["subresources"] = {"status": {}}
    names: Obj = {
        "plural": plural,
        "singular": kind.lower(),
        "kind": kind,
        "listKind": f"{kind}List",
    }
    shorts = list(short_names)
    if shorts:
        names["shortNames"] = shorts
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": names,
            "scope": "Namespaced" if namespaced else "Cluster",
            "versions": [served],
        },
    }


@dataclass(frozen=True)
class Target:
    """What a resource request's path names: the type, and the namespace, name and subresource."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
