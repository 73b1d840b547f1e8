"""Hostile manifests (issue 12): each file of tests/hostile/cases/, beside a target that
takes any product, gives exactly the output of its sidecar ``.out`` file from both
``validate`` and ``plan``: exit 1, every problem named with its file and true line, no
traceback, in bounded time and memory (nothing of an alias bomb is ever expanded).

A case is one file; its sidecar holds the whole expected output. After changing a
message on purpose, ``UPDATE_HOSTILE=1 python -m pytest tests/test_hostile_manifests.py``
rewrites the sidecars; review their diff like any other change.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import tracemalloc
from pathlib import Path

import pytest

from conftest import ANY_PRODUCT_TARGET, Workspace
from reconciler.state import State

CASES = Path(__file__).parent / "hostile" / "cases"
# Far below what expanding any case would take (an alias bomb: gigabytes).
MEMORY_BOUND = 64 * 2**20


def case_files() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if p.suffix != ".out")


def test_the_corpus_is_large_and_every_case_has_its_expected_output():
    cases = case_files()
    assert len(cases) >= 60
    assert {p.suffix for p in cases} == {".yaml", ".json", ".jsonl", ".csv"}
    orphans = {p.name for p in CASES.glob("*.out")} - {f"{p.name}.out" for p in cases}
    assert not orphans
    if not os.environ.get("UPDATE_HOSTILE"):
        assert all(Path(f"{p}.out").exists() for p in cases)


@pytest.mark.parametrize("case", case_files(), ids=lambda p: p.name)
def test_hostile_file_is_one_clear_located_error(tmp_path, case):
    ws = Workspace(tmp_path / "ws")
    ws.write("00-targets.yaml", ANY_PRODUCT_TARGET)
    shutil.copyfile(case, ws.manifests / case.name)
    sidecar = Path(f"{case}.out")
    tracemalloc.start()
    try:
        outputs = {command: ws.run(command) for command in ("validate", "plan")}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if os.environ.get("UPDATE_HOSTILE"):
        sidecar.write_text(outputs["validate"].output)
    expected = sidecar.read_text()
    for command, result in outputs.items():
        assert result.exit_code == 1, (command, result.output)
        assert "Traceback" not in result.output
        assert result.output == expected, command
    assert expected.startswith("Error: ") and f"manifests/{case.name}" in expected
    assert peak < MEMORY_BOUND
    assert not (ws.root / "state").exists()  # nothing written


def test_a_state_row_with_broken_json_is_one_clear_message(ws):
    """`state show` (and `plan`) of an item whose stored payload was damaged by hand."""
    ws.write("00-targets.yaml", ANY_PRODUCT_TARGET)
    ws.write("p.yaml", {"products": [{"sku": "A-1"}]})
    path = ws.root / "state" / "reconciler.db"
    state = State(path)
    state.adopt("shop", [("product", "A-1", "A-1", {"title": "Mug"})])
    state.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE items SET payload = '{\"title\": \"Mu' WHERE key = 'A-1'")
    conn.close()
    for command in (("state", "show", "A-1"), ("plan",)):
        result = ws.run(*command)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert result.output.startswith("Error: the state's item 'A-1' (product) at target shop holds a payload "
                                        "that is not JSON (")
        assert result.output.endswith("`reconciler state rm A-1 -t shop` forgets it, and the next plan creates it "
                                      "again\n")


def test_the_manifest_reference_states_the_limits_the_code_enforces():
    from reconciler.manifest.models import INTEGER_LIMIT, PRICE_LIMIT, SKU_MAX_LENGTH
    from reconciler.manifest.structure import ALIAS_LIMIT

    reference = (Path(__file__).parent.parent / "docs" / "manifest-reference.md").read_text()
    for stated in (f"at most {SKU_MAX_LENGTH} characters", f"below {int(PRICE_LIMIT):,}",
                   f"at most {INTEGER_LIMIT:,}", f"at most {ALIAS_LIMIT:,} values", "at most 2 without a `currency`"):
        assert stated in reference
