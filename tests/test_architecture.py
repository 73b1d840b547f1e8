"""docs/architecture.md stays true: what it links to exists, its links stay inside the
repository, and every package of reconciler/ is named in it."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "architecture.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_link_stays_in_the_repository_and_exists():
    links = LINK.findall(PAGE.read_text())
    assert links
    for link in links:
        assert "://" not in link and not link.startswith("/"), link
        target = (PAGE.parent / link.split("#")[0]).resolve()
        assert target.is_relative_to(ROOT) and target.exists(), link


def test_every_package_of_reconciler_is_named():
    text = PAGE.read_text()
    packages = [p.parent for p in (ROOT / "reconciler").glob("*/__init__.py")]
    assert packages
    for package in packages:
        assert f"reconciler/{package.name}/" in text, package.name


def test_every_module_of_the_engine_is_named():
    text = PAGE.read_text()
    for module in (ROOT / "reconciler" / "apply").glob("[!_]*.py"):
        assert f"apply/{module.name}" in text, module.name
