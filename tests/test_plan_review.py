"""A plan reviewed in a pull request, at any size: the comment's budget is shared
fairly so that every target gets its details; a roll-up of the updates by field comes
first; a plan the mass-delete guard refuses still gives a comment saying why and how to
approve it."""
from __future__ import annotations

import re

import pytest

from conftest import product, target
from reconciler.markdown import Section, fit, share_fairly
from reconciler.plan.model import Change, FieldDiff, ListedChanges, Plan, TargetPlan
from reconciler.plan.render import MARKDOWN_LIMIT, MASS_DELETE_REFUSED, field_rollup, render_markdown


def update(sku: str, *changed: str, added: tuple[str, ...] = ()) -> Change:
    before = {name: 1 for name in changed}
    after = {**{name: 2 for name in changed}, **{name: 3 for name in added}}
    return Change("update", "product", sku, sku, before, after, FieldDiff(tuple(changed), tuple(added)))


def create(sku: str, width: int = 20) -> Change:
    return Change("create", "product", sku, sku, None, {"name": f"Product {sku}", "description": "x" * width})


def delete(sku: str) -> Change:
    return Change("delete", "product", sku, sku, {"name": sku}, None, FieldDiff(removed=("name",)))


def plan_of(**targets: list[Change]) -> Plan:
    return Plan("LINEAGE", 3, {name: TargetPlan(name, "meta_catalog", tuple(changes), 10)
                               for name, changes in targets.items()})


def balanced(text: str) -> bool:
    return text.count("```") % 2 == 0 and text.count("<details>") == text.count("</details>")


def test_share_fairly_meets_small_demands_whole_and_splits_the_rest():
    assert share_fairly([10, 100, 1000], 300) == [10, 100, 190]
    assert share_fairly([1000, 10, 100], 1000) == [890, 10, 100]
    assert share_fairly([500, 500], 600) == [300, 300]
    assert share_fairly([5, 5], 1000) == [5, 5]
    assert share_fairly([], 100) == []


def test_every_target_gets_its_details_when_one_target_is_huge():
    plan = plan_of(huge=[create(f"H{i:05d}", 300) for i in range(5000)],
                   small=[update("S1", "price"), update("S2", "name")],
                   medium=[create(f"M{i:03d}", 100) for i in range(300)],
                   gone=[delete(f"G{i:03d}") for i in range(40)])
    text = render_markdown(plan)
    assert len(text) <= MARKDOWN_LIMIT and balanced(text)
    for name in ("huge", "small", "medium", "gone"):
        assert f"<summary><code>{name}</code>" in text
    assert "@@ update product S1 @@" in text and "@@ update product S2 @@" in text  # small: whole
    assert "more changes to `small`" not in text and "more changes to `gone`" not in text
    shown = {name: len(re.findall(rf"\+ create product {name[0].upper()}\d+", text)) for name in ("huge", "medium")}
    assert 0 < shown["huge"] < 5000 and 0 < shown["medium"] < 300
    # the two large targets share what the small ones left, about equally
    huge_part = text.split("<code>huge</code>")[1].split("</details>")[0]
    medium_part = text.split("<code>medium</code>")[1].split("</details>")[0]
    assert abs(len(huge_part) - len(medium_part)) < 0.2 * len(huge_part)
    assert f"… and {5000 - shown['huge']:,} more changes to `huge` not shown." in text
    assert f"… and {300 - shown['medium']:,} more changes to `medium` not shown." in text
    left = 5000 - shown["huge"] + 300 - shown["medium"]
    assert f"**Plan truncated** to fit a comment: {left:,} more changes not shown." in text


def test_a_plan_that_fits_is_whole_and_says_nothing_about_truncation():
    plan = plan_of(a=[create("A1"), delete("A2")], b=[update("B1", "price")])
    text = render_markdown(plan)
    assert "truncated" not in text and "not shown" not in text
    assert text.count("+ create product A1") == 1 and "- delete product A2" in text


def test_the_deletions_are_shared_too_and_say_how_many_are_left_out():
    plan = plan_of(a=[delete(f"D{i:06d}") for i in range(20000)], b=[update("B1", "price")])
    text = render_markdown(plan, limit=20_000)
    assert len(text) <= 20_000 and balanced(text)
    listed = len(re.findall(r"^- `a`: `D\d+` \(product\)$", text, flags=re.M))
    assert 0 < listed < 20000
    assert f"- _… and {20000 - listed:,} more deletions not shown_" in text
    assert "@@ update product B1 @@" in text


def test_sections_whose_frames_do_not_fit_are_counted_as_left_out():
    sections = [Section(f"<s{i}>", lambda: iter(["u"]), 1, lambda left: "</s>") for i in range(100)]
    text = fit("head", sections, 200, lambda n: f"[{n} left out]")
    assert len(text) <= 200 and text.startswith("head\n<s0>\nu\n</s>")
    kept = text.count("</s>")
    assert text.endswith(f"[{100 - kept} left out]")


def test_rollup_by_field_comes_before_the_details():
    changes = [update(f"P{i:05d}", "price") for i in range(1204)]
    changes += [update(f"N{i}", "name", "price") for i in range(3)] + [update("G1", added=("gtin",))]
    plan = plan_of(meta=changes, other=[create("X")])
    text = render_markdown(plan)
    line = "- `meta`: `price` changed on 1,207 items, `name` changed on 3 items, `gtin` added on 1 item"
    assert line in text
    assert text.index("### Updates by field") < text.index("| `meta` |") + 200 < text.index("<details>")
    assert "- `other`" not in text.split("### Updates by field")[1].split("<details>")[0]  # creates only


def test_rollup_names_the_most_frequent_fields_first_and_counts_the_rest():
    changes = [update(f"S{i}", *[f"f{j:02d}" for j in range(i + 1)]) for i in range(15)]
    text = field_rollup(ListedChanges(changes))
    assert text.startswith("`f00` changed on 15 items, `f01` changed on 14 items")
    assert text.endswith("and 3 more fields")


def test_a_refused_plan_still_gives_a_comment(ws):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("p.yaml", {"products": [product(f"SKU-{i}") for i in range(10)]})
    from test_plan import plan_of as real_plan_of, record_all

    plan, state = real_plan_of(ws)  # recorded as an apply would
    record_all(state, plan)
    state.close()
    ws.write("p.yaml", {"products": [product("SKU-0")]})
    result = ws.run("plan", "--format", "markdown")
    assert result.exit_code == 1
    comment = result.stdout
    assert comment.startswith("## reconciler plan\n") and MASS_DELETE_REFUSED in comment
    assert "Refused by the mass-delete guard" in comment
    assert "target meta: the plan deletes 9 of 10 items" in comment
    assert "`reconciler plan --allow-mass-delete -o plan.out`" in comment
    assert "Error: target meta: the plan deletes 9 of 10 items" in result.stderr
    assert ws.run("plan").stdout == ""  # the text form prints no comment


def test_any_other_error_gives_a_comment_too(ws):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("p.yaml", {"products": [product("A```B", price="-1")]})
    result = ws.run("plan", "--format", "markdown")
    assert result.exit_code == 1
    assert "**:x: No plan could be made.**" in result.stdout and "````text\n" in result.stdout
    assert "sku A```B: price" in result.stdout and result.stdout.endswith("\n````\n")  # fenced past its backticks
