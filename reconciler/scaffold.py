"""``reconciler init``: a new workspace with one example manifest."""
from __future__ import annotations

from pathlib import Path

from reconciler.errors import ReconcilerError

EXAMPLE = """\
# A reconciler workspace: targets (destinations) and products (desired state).
# `reconciler validate`, `reconciler plan`, then `reconciler apply`.
targets:
  meta-sandbox:
    provider: meta_catalog
    base_url: http://127.0.0.1:8701     # `reconciler sandbox`; omit for the real API
    auth:
      access_token: ${META_TOKEN}         # from the environment at apply (the sandbox's: sandbox-token)
    settings: {catalog_id: "1234567890", api_version: v21.0}

products:
  - sku: TEE-BLACK-M
    name: Classic Tee, Black, M
    description: Organic cotton t-shirt.
    url: https://shop.example.com/p/tee-black
    image_url: https://cdn.example.com/img/tee-black.jpg
    brand: Northwind
    categories: [Apparel, T-Shirts]
    price: "24.90"
    currency: USD
    stock: 140
"""

GITIGNORE = "state/*.db\nstate/*.db-*\n*.plan\n"


def scaffold(directory: Path) -> list[Path]:
    manifest = directory / "manifests" / "catalog.yaml"
    if manifest.exists() or (directory / "manifests").is_dir() and any((directory / "manifests").iterdir()):
        raise ReconcilerError(f"{directory / 'manifests'} already has manifests; not overwriting them")
    manifest.parent.mkdir(parents=True, exist_ok=True)
    (directory / "state").mkdir(exist_ok=True)
    manifest.write_text(EXAMPLE)
    created = [manifest]
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text(GITIGNORE)
        created.append(ignore)
    return created
