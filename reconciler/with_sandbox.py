"""``--with-sandbox``: the local simulators for one command, and the targets pointed at them.

A workspace made for the sandbox (the example one, or ``reconciler init``'s) names the
simulators by their default addresses, ``http://127.0.0.1:8700`` and the ports after it,
one per provider in registry order. When the simulators run elsewhere
(``--sandbox-port N``, or 0 for any free ports: a ``reconciler sandbox`` already holds
8700, or tests run side by side), every target whose base URL is one of those default
addresses is pointed at the simulator now serving it, for this command only: the
manifests are not touched, and a target with any other base URL (a real API) is left
as it is. A target pointed so still names the catalog at its declared address (its
identity in the state and its fingerprint in a saved plan), so that the next command,
on other free ports or on none, is about the same target.
"""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

import click

from reconciler.errors import ReconcilerError
from reconciler.manifest.loader import Manifests
from reconciler.manifest.models import Target

LOCAL_HOSTS = ("127.0.0.1", "localhost")


def default_addresses(first_port: int, urls: Mapping[str, str]) -> dict[int, str]:
    """``{default port: the running simulator's URL}`` for simulators started in
    registry order (``urls`` keeps that order) that would be at ``first_port`` onwards."""
    return {first_port + offset: url for offset, url in enumerate(urls.values())}


def redirected(target: Target, addresses: Mapping[int, str]) -> Target:
    """``target`` with its base URL at the running simulator, if it names a default address."""
    if not target.base_url:
        return target
    parts = urlsplit(target.base_url)
    try:
        port = parts.port
    except ValueError:  # not a port number: not a sandbox address either
        return target
    if parts.scheme != "http" or parts.hostname not in LOCAL_HOSTS or port not in addresses:
        return target
    served = urlsplit(addresses[port])
    return target.served_at(urlunsplit(parts._replace(netloc=served.netloc)))


class SandboxedWorkspace:
    """A workspace whose manifests' targets are redirected to running simulators;
    anything else is the wrapped workspace's."""

    def __init__(self, workspace: Any, addresses: Mapping[int, str]):
        self._workspace = workspace
        self._addresses = dict(addresses)

    def manifests(self) -> Manifests:
        manifests = self._workspace.manifests()
        manifests.targets = {name: redirected(target, self._addresses) for name, target in manifests.targets.items()}
        return manifests

    def __getattr__(self, name: str) -> Any:
        return getattr(self._workspace, name)


def serve(ctx: click.Context, workspace: Any, port: int) -> Any:
    """Start the simulators from ``port`` (0: any free ports) for the life of ``ctx``;
    the workspace the command should use (redirected unless at the default ports)."""
    from reconciler.sandbox import Sandbox, SandboxConfig, port_range

    default = SandboxConfig().port
    try:
        sandbox = ctx.with_resource(Sandbox(SandboxConfig(port=port)))
    except OSError as exc:
        where = "free ports" if port == 0 else f"ports {port_range(port)}"
        raise ReconcilerError(
            f"cannot start the sandbox on {where}: {exc}. If a `reconciler sandbox` holds them, use it "
            "(drop --with-sandbox), or start this one elsewhere with --sandbox-port N (0: any free ports)."
        ) from None
    if port == default:
        return workspace
    served = ", ".join(urlsplit(url).netloc for url in sandbox.urls.values())
    click.echo(f"Sandbox on {served}: targets at 127.0.0.1:{port_range(default)} are pointed at it "
               "for this command.", err=True)
    return SandboxedWorkspace(workspace, default_addresses(default, sandbox.urls))
