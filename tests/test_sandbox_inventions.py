"""docs/sandbox.md lists every behaviour a simulator invents; each row's id is written
beside the code that does it (``# invented: <id> (docs/sandbox.md)``). The two are kept
in step, both ways: a row without code, or an invention without a row, fails here."""
from __future__ import annotations

import re
from pathlib import Path

from reconciler.providers import names

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"# invented: ([a-z_]+\.[a-z0-9-]+) \(docs/sandbox\.md\)")
ROW = re.compile(r"^\| `([a-z_]+\.[a-z0-9-]+)` \| (.+?) \| (.+?) \|$", re.M)


def simulator_sources() -> dict[str, str]:
    """``{source file: text}`` of the shared harness and every provider's simulator."""
    files = sorted((REPO / "reconciler" / "sandbox").glob("*.py"))
    files += [REPO / "reconciler" / "providers" / name / "simulator.py" for name in names()]
    return {str(path.relative_to(REPO)): path.read_text() for path in files if path.exists()}


def test_every_invention_has_its_row_and_every_row_its_code():
    rows = ROW.findall((REPO / "docs" / "sandbox.md").read_text())
    documented = [row[0] for row in rows]
    assert len(documented) == len(set(documented)), "an id is listed twice"
    marked: dict[str, str] = {}
    for path, text in simulator_sources().items():
        for found in MARKER.findall(text):
            assert marked.setdefault(found, path) == path, f"{found} is marked in two files"
    assert set(documented) == set(marked), (
        f"rows without code: {sorted(set(documented) - set(marked))}; "
        f"code without a row: {sorted(set(marked) - set(documented))}")
    for row_id, path in marked.items():  # the id names where it lives
        owner = row_id.split(".")[0]
        expected = "reconciler/sandbox/" if owner == "sandbox" else f"reconciler/providers/{owner}/simulator.py"
        assert path.startswith(expected), (row_id, path)
    for row_id, behaviour, why in rows:
        assert behaviour.strip() and why.strip(), row_id


def test_every_provider_has_its_inventions_listed():
    documented = {row[0].split(".")[0] for row in ROW.findall((REPO / "docs" / "sandbox.md").read_text())}
    assert documented >= set(names()) | {"sandbox"}
