"""docs/providers.md stays true: each code excerpt is, line for line, in the file it
names, and every link points at a file or folder of the repository."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "providers.md"
EXCERPT = re.compile(r"<!-- excerpt: (\S+) -->\n```python\n(.*?)```", re.S)


def test_every_excerpt_is_in_the_file_it_names():
    excerpts = EXCERPT.findall(DOC.read_text())
    assert len(excerpts) >= 8
    for path, code in excerpts:
        assert code in (REPO / path).read_text(), f"docs/providers.md: this excerpt is not in {path}:\n{code}"


def test_every_code_block_is_an_excerpt():
    text = DOC.read_text()
    assert text.count("```python") == len(EXCERPT.findall(text))


def test_links_stay_inside_the_repository_and_exist():
    links = re.findall(r"\]\(([^)]+)\)", DOC.read_text())
    assert links
    for link in links:
        assert "://" not in link and not link.startswith("/"), link
        target = (DOC.parent / link).resolve()
        assert REPO in target.parents and target.exists(), link
