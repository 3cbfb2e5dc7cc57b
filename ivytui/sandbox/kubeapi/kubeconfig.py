"""A kubeconfig that points kubectl and the clients at the emulator."""

from __future__ import annotations

import os

import yaml

from ivytui.sandbox.kubeapi.common import Obj


def write_kubeconfig(
    path: str | os.PathLike[str],
    server_url: str,
    *,
    namespace: str,
    context: str = "ivytui-sandbox",
    user_token: str | None = None,
) -> None:
    """Write a kubeconfig with one cluster, context and user; the context is current."""
    user: Obj = {"token": user_token} if user_token else {}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": context, "cluster": {"server": server_url}}],
        "users": [{"name": context, "user": user}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": context, "namespace": namespace},
            }
        ],
        "current-context": context,
    }
    text = yaml.safe_dump(config, sort_keys=False)
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
