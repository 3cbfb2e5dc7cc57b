"""A Kubernetes API server emulator: an in-memory object store served over real HTTP on loopback.

`KubeStore` keeps the objects, the global resourceVersion and a bounded watch history; code in the
same process reads and writes it directly. `KubeAPIServer` serves it with the conventions of a real
kube-apiserver (discovery, CRUD, merge and JSON patches, status subresources, selectors, chunked
watch streams with bookmarks and 410 Gone, dry runs, `Status` errors), which is what the
kubernetes_asyncio client and kubectl rely on. Custom resources are served from the
CustomResourceDefinition objects present in the store.

Modules, in dependency order: `common` (JSON helpers), `resources` (resource types, CRD
manifests), `errors` (`ApiError` and the Status bodies), `validation`, `selectors`, `patch`,
`records` (committed writes, watch history), `writes` (what a create or update stores),
`store` (`KubeStore`), `requestlog`, `faults` (the fault stage behind `/_sandbox/faults/kube`,
and its urllib client `arm`, `armed`, `clear`), `discovery`, `watch` (lists and watch streams),
`server` (`KubeAPIServer`), `kubeconfig`.
"""

from ivytui.sandbox.kubeapi.common import Obj
from ivytui.sandbox.kubeapi.errors import ApiError
from ivytui.sandbox.kubeapi.kubeconfig import write_kubeconfig
from ivytui.sandbox.kubeapi.patch import apply_json_patch, apply_merge_patch
from ivytui.sandbox.kubeapi.requestlog import carried_precondition
from ivytui.sandbox.kubeapi.resources import (
    BUILTIN_TYPES,
    CRD_KEY,
    NAMESPACES_KEY,
    ResourceType,
    crd_manifest,
)
from ivytui.sandbox.kubeapi.selectors import parse_field_selector, parse_label_selector
from ivytui.sandbox.kubeapi.server import KubeAPIServer
from ivytui.sandbox.kubeapi.store import KubeStore

__all__ = [
    "BUILTIN_TYPES",
    "CRD_KEY",
    "NAMESPACES_KEY",
    "ApiError",
    "KubeAPIServer",
    "KubeStore",
    "Obj",
    "ResourceType",
    "apply_json_patch",
    "apply_merge_patch",
    "carried_precondition",
    "crd_manifest",
    "parse_field_selector",
    "parse_label_selector",
    "write_kubeconfig",
]
