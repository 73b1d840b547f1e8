"""``reconciler init``: a new workspace with one example manifest, and the schema of
its manifests beside them, which the example names for editors (its first line)."""
from __future__ import annotations

from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.manifest.loader import load
from reconciler.manifest.schema import FILE_NAME, MODELINE, workspace_schema

EXAMPLE = MODELINE + """
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

GITIGNORE = "state/*.db\nstate/*.db-*\n*.plan\n.reconciler/\n"


def scaffold(directory: Path, force: bool = False) -> list[tuple[str, Path]]:
    """Write the example workspace into ``directory``: ``(what was done, path)`` pairs.

    A directory that already has manifests is a workspace: without ``force`` nothing is
    written and the error says what would be overwritten or added to. ``.gitignore`` is
    never overwritten; the lines it lacks are appended."""
    manifests = directory / "manifests"
    manifest = manifests / "catalog.yaml"
    schema = directory / FILE_NAME
    others = sorted(p for p in manifests.rglob("*") if p.is_file() and p != manifest) if manifests.is_dir() else []
    if not force and (manifest.exists() or others):
        would = []
        for existing in (manifest, schema):
            if existing.exists():
                would.append(f"overwrite {existing}")
        if others:
            shown = ", ".join(str(p.relative_to(manifests)) for p in others[:5])
            more = f" and {len(others) - 5} more" if len(others) > 5 else ""
            would.append(f"add the example target and product to the {len(others)} other file(s) of "
                         f"{manifests} ({shown}{more}), which stay")
        raise ReconcilerError(f"{directory} is already a workspace: init would {'; and '.join(would)}. "
                              f"Run `reconciler init --force {directory}` to do so.")
    done = [("overwrote" if manifest.exists() else "created", manifest)]
    manifest.parent.mkdir(parents=True, exist_ok=True)
    (directory / "state").mkdir(exist_ok=True)
    manifest.write_text(EXAMPLE)
    done.append(("overwrote" if schema.exists() else "created", schema))
    schema.write_text(workspace_schema(load(manifests)), encoding="utf-8")  # for every target there
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text(GITIGNORE)
        done.append(("created", ignore))
    else:
        text = ignore.read_text()
        missing = [line for line in GITIGNORE.splitlines() if line not in text.splitlines()]
        if missing:
            ignore.write_text(text + ("" if not text or text.endswith("\n") else "\n") + "\n".join(missing) + "\n")
            done.append(("updated", ignore))
    return done
