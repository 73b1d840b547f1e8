"""A saved plan is what gets applied, or nothing is (issue 11 item 1, issue 10 item 7).

Over the real CLI and the sandbox: plan files tampered with in each way a careless or
hostile user could (with their digest left alone, and made again to match) are
refused with a clear message and nothing reaches the sandbox; a plan is bound to its
targets' provider, base URL and settings; the state is bound to the catalog its
items were confirmed at; the mass-delete guard holds at apply; and random mutations
of a plan file are all refused, or leave the plan as it was.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import product, sandbox_fixture, sandbox_writes, target
from reconciler.plan import file as plan_file
from reconciler.state import State

sandbox = sandbox_fixture(async_delay=0.02, latency=0.001)


def writes(sb) -> int:
    return sum(len(sandbox_writes(sb, provider)) for provider in ("meta_catalog", "venddor"))


def catalog(n: int, **prices: str) -> list[dict]:
    gtins = ["7891404130317", "7898915633481", "4006381333931", "5012345678900", "0737963000128",
             "8711252045320", "7622210449283", "5000112637922", "8000500310427", "4008400401621"]
    return [product(f"P{i:02d}", gtin=gtins[i], price=prices.get(f"P{i:02d}", "10.00")) for i in range(n)]


@pytest.fixture
def shop(ws, sandbox):
    """Ten products applied to a Meta catalog and a Venddor account; then P01's and
    P02's prices change in the manifests, and ``shop.planfile`` is the saved plan."""
    sandbox.reset()
    ws.write("targets.yaml", {"targets": {"meta": target("meta_catalog", sandbox.urls["meta_catalog"]),
                                          "vend": target("venddor", sandbox.urls["venddor"])}})
    ws.write("products.yaml", {"products": catalog(10)})
    assert ws.run("apply", "--auto-approve").exit_code == 0
    ws.write("products.yaml", {"products": catalog(10, P01="12.00", P02="13.50")})
    ws.planfile = ws.root / "plan.out"
    result = ws.run("plan", "-o", str(ws.planfile))
    assert result.exit_code == 0 and "Plan: 0 to create, 4 to update, 0 to delete." in result.stdout
    return ws


# -- editing a plan file -------------------------------------------------------------------------
def lines_of(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def write_lines(path, lines: list[dict], redigest: bool) -> None:
    """``lines`` (header, changes, end line) as a plan file; ``redigest``: with the
    digest and count of the end line made again to match, as a hostile editor would."""
    body = b"".join(orjson.dumps(line) + b"\n" for line in lines[:-1])
    end = lines[-1]
    if redigest:
        end = {"end_of_plan": {"changes": len(lines) - 2,
                               "blake2b": hashlib.blake2b(body, digest_size=32).hexdigest()}}
    path.write_bytes(body + orjson.dumps(end) + b"\n")


def state_item(ws, target_name: str, sku: str):
    state = State(ws.state_location, create=False)
    try:
        return next(item for item in state.items(target_name) if item.sku == sku)
    finally:
        state.close()


def append_deletes(ws, lines, fix_summary):
    head, changes, end = lines[0], lines[1:-1], lines[-1]
    deletes = []
    for sku in ("P05", "P06", "P07"):
        item = state_item(ws, "vend", sku)
        deletes.append({"target": "vend", "sku": sku, "action": "delete", "record": item.record, "key": item.key,
                        "before": item.payload, "after": None,
                        "fields": {"changed": [], "added": [], "removed": sorted(item.payload)}})
    if fix_summary:
        head["targets"]["vend"]["summary"]["delete"] += 3
        head["targets"]["vend"]["summary"]["unchanged"] -= 3
    return [head, *changes, *deletes, end]


def edit_after(ws, lines, fix_summary):
    for line in lines[1:-1]:
        if line["target"] == "meta" and line["sku"] == "P01":
            line["after"]["price"] = 1
            line["after"]["name"] = "TAMPERED"
    return lines


def inject_create(ws, lines, fix_summary):
    head, changes, end = lines[0], lines[1:-1], lines[-1]
    ghost = product("GHOST", gtin="5901234123457")
    create = {"target": "vend", "sku": "GHOST", "action": "create", "record": "product", "key": "5901234123457",
              "before": None, "after": {"product_code": "5901234123457", "name": ghost["name"]},
              "fields": {"changed": [], "added": ["name", "product_code"], "removed": []}}
    if fix_summary:
        head["targets"]["vend"]["summary"]["create"] += 1
    return [head, *changes, create, end]


def explode(ws, lines, fix_summary):
    head, changes, end = lines[0], lines[1:-1], lines[-1]
    boom = dict(changes[0], action="explode")
    return [head, *changes, boom, end]


TAMPERINGS = {
    "appended deletes, header unchanged": (append_deletes, "its header's summary does not match its changes "
                                           "(target vend counts 0 to delete, its lines hold 3)"),
    "appended deletes, header counts them": (append_deletes, "target vend: the plan says delete P05 (product); the "
                                             "manifests and state now give no change for it (and 2 more differences)"),
    "an edited after": (edit_after, 'target meta: the plan says update P01 name "Product P01" → "TAMPERED"; the '
                        'manifests now give "Product P01"'),
    "a create for an unknown sku, header unchanged": (inject_create, "target vend counts 0 to create, its lines "
                                                      "hold 1"),
    "a create for an unknown sku, header counts it": (inject_create, "target vend: the plan says create GHOST "
                                                      "(product); the manifests and state now give no change for it"),
    "an unknown action": (explode, "unknown action 'explode' (a plan's actions are create, update, delete)"),
}


@pytest.mark.parametrize("kind, redigest", [
    (kind, redigest) for kind in TAMPERINGS for redigest in (False, True)
    if redigest or "header counts" not in kind  # an edited header with its digest left alone: the case above
], ids=lambda value: {False: "digest left alone", True: "digest made again"}.get(value, value))
def test_a_tampered_plan_is_refused_and_nothing_is_sent(shop, sandbox, kind, redigest):
    tamper, reason = TAMPERINGS[kind]
    write_lines(shop.planfile, tamper(shop, lines_of(shop.planfile), "header counts" in kind), redigest)
    before = writes(sandbox)
    result = shop.run("apply", str(shop.planfile))
    assert result.exit_code == 1 and "Traceback" not in result.output
    if redigest:
        assert reason in result.output, result.output
    else:
        assert f"{shop.planfile} was edited or corrupted since it was saved: its content does not match the " \
               "digest on its end line" in result.output
    assert "Nothing was sent" in result.output
    assert writes(sandbox) == before
    # show checks the file as apply does (not what the manifests give now), and never crashes
    shown = shop.run("show", str(shop.planfile))
    assert "Traceback" not in shown.output
    assert shown.exit_code == (0 if "header counts" in kind or kind == "an edited after" and redigest else 1)


def test_an_unknown_action_with_its_digest_left_alone_is_named_too(shop):
    write_lines(shop.planfile, explode(shop, lines_of(shop.planfile), False), redigest=False)
    result = shop.run("show", str(shop.planfile))
    assert result.exit_code == 1
    assert "was edited or corrupted since it was saved" in result.output
    assert "for one, line 6: unknown action 'explode'" in result.output


def test_a_stale_plan_with_the_current_serials_copied_into_it_is_refused(shop, sandbox):
    stale = shop.planfile.read_bytes()
    assert shop.run("apply", "--auto-approve").exit_code == 0  # the same changes, applied by another run
    state = State(shop.state_location, create=False)
    serials, serial = state.target_serials(), state.serial
    state.close()
    for redigest, reason in ((False, "was edited or corrupted since it was saved"),
                             (True, "target meta: the plan says update P01 (product); the manifests and state now "
                                    "give no change for it (and 1 more difference)")):
        shop.planfile.write_bytes(stale)
        lines = lines_of(shop.planfile)
        lines[0]["target_serials"], lines[0]["state_serial"] = serials, serial
        write_lines(shop.planfile, lines, redigest)
        before = writes(sandbox)
        result = shop.run("apply", str(shop.planfile))
        assert result.exit_code == 1 and reason in result.output, result.output
        assert writes(sandbox) == before
    shop.planfile.write_bytes(stale)  # as it was saved: stale
    result = shop.run("apply", str(shop.planfile))
    assert result.exit_code == 1 and "the state changed since the plan was made" in result.output
    assert "target meta is at serial" in result.output


def test_a_truncated_plan_is_incomplete(shop, sandbox):
    data = shop.planfile.read_bytes()
    before = writes(sandbox)
    last_line = data.rindex(b"\n", 0, len(data) - 1) + 1
    for cut, reason in ((len(data) // 2, "is incomplete: it ends in the middle of line"),
                        (last_line, "is incomplete: it ends at line 5 without its end line")):
        shop.planfile.write_bytes(data[:cut])
        result = shop.run("apply", str(shop.planfile))
        assert result.exit_code == 1 and reason in result.output, result.output
    assert writes(sandbox) == before


def test_a_flipped_byte_is_refused(shop, sandbox):
    data = shop.planfile.read_bytes()
    before = writes(sandbox)
    refusals = set()
    for position in range(0, len(data), max(1, len(data) // 40)):
        flipped = bytearray(data)
        flipped[position] ^= 0x04
        shop.planfile.write_bytes(bytes(flipped))
        result = shop.run("apply", str(shop.planfile))
        assert result.exit_code == 1 and "Traceback" not in result.output, (position, result.output)
        refusals.add(next(reason for reason in ("edited or corrupted", "is corrupted", "is not a reconciler plan",
                                                "is not a valid plan", "is incomplete")
                           if reason in result.output))
    assert writes(sandbox) == before
    assert {"edited or corrupted", "is corrupted"} <= refusals


def test_the_untouched_plan_applies_exactly(shop, sandbox):
    result = shop.run("apply", str(shop.planfile))
    assert result.exit_code == 0, result.output
    prices = {row["retailer_id"]: row["price"] for row in sandbox.catalog("meta_catalog", catalog_id="1234567890")}
    assert prices["P01"] == 1200 and prices["P02"] == 1350
    assert shop.run("plan", "--detailed-exitcode").exit_code == 0


def test_only_a_saved_plan_is_applied_not_the_json_format_nor_an_older_file(shop, sandbox):
    before = writes(sandbox)
    as_json = shop.root / "plan.json"
    as_json.write_text(shop.run("plan", "--format", "json").stdout)
    result = shop.run("apply", str(as_json))
    assert result.exit_code == 1 and "is a plan in the JSON format" in result.output
    lines = lines_of(shop.planfile)
    for target_plan in lines[0]["targets"].values():
        del target_plan["fingerprint"]
    shop.planfile.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines[:-1]))
    result = shop.run("apply", str(shop.planfile))
    assert result.exit_code == 1 and "was saved by an earlier version of reconciler" in result.output
    assert writes(sandbox) == before
    assert shop.run("show", str(as_json)).exit_code == 0  # the JSON format is for reading


def test_apply_of_some_targets_of_a_plan_checks_and_applies_only_those(shop, sandbox):
    meta, vend = len(sandbox_writes(sandbox, "meta_catalog")), len(sandbox_writes(sandbox, "venddor"))
    result = shop.run("apply", str(shop.planfile), "-t", "vend")
    assert result.exit_code == 0, result.output
    assert len(sandbox_writes(sandbox, "meta_catalog")) == meta and len(sandbox_writes(sandbox, "venddor")) > vend
    assert shop.run("plan", "-t", "vend", "--detailed-exitcode").exit_code == 0
    assert shop.run("plan", "-t", "meta", "--detailed-exitcode").exit_code == 2  # meta was left alone
    result = shop.run("apply", str(shop.planfile), "-t", "meta")  # its serial did not move: still valid
    assert result.exit_code == 0, result.output
    shop.write("targets.yaml", {"targets": {"meta": target("meta_catalog", sandbox.urls["meta_catalog"]),
                                            "vend": target("venddor", sandbox.urls["venddor"]),
                                            "other": target("venddor", sandbox.urls["venddor"])}})
    result = shop.run("apply", str(shop.planfile), "-t", "other")
    assert result.exit_code == 1 and "has no target other (its targets: meta, vend)" in result.output


def test_show_refuses_a_json_plan_with_an_unknown_action(shop):
    document = orjson.loads(shop.run("plan", "--format", "json").stdout)
    document["targets"]["meta"]["changes"][0]["action"] = "explode"
    as_json = shop.root / "plan.json"
    as_json.write_bytes(orjson.dumps(document))
    result = shop.run("show", str(as_json))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is not a valid plan: target meta, change 1: unknown action 'explode'" in result.output


# -- a plan is bound to its targets -------------------------------------------------------------------
def test_a_plan_is_refused_once_its_target_points_at_another_catalog(shop, sandbox):
    shop.write("targets.yaml", {"targets": {
        "meta": target("meta_catalog", sandbox.urls["meta_catalog"],
                       settings={"catalog_id": "999", "api_version": "v21.0"}),
        "vend": target("venddor", sandbox.urls["venddor"])}})
    before = writes(sandbox)
    result = shop.run("apply", str(shop.planfile))
    assert result.exit_code == 1
    assert "the plan was made for other destinations than the manifests now name" in result.output
    assert "target meta: its settings.catalog_id changed since the plan was made for it" in result.output
    assert writes(sandbox) == before
    assert sandbox.catalog("meta_catalog", catalog_id="999") == []


def test_a_plan_is_refused_once_its_target_base_url_changed(shop, sandbox):
    shop.write("targets.yaml", {"targets": {
        "meta": target("meta_catalog", sandbox.urls["meta_catalog"]),
        "vend": target("venddor", sandbox.urls["venddor"] + "/")}})  # the same URL: not a change
    assert shop.run("show", str(shop.planfile)).exit_code == 0
    shop.write("targets.yaml", {"targets": {
        "meta": target("meta_catalog", sandbox.urls["meta_catalog"]),
        "vend": target("venddor", "http://127.0.0.1:9")}})
    result = shop.run("apply", str(shop.planfile))
    assert result.exit_code == 1 and "target vend: its base_url changed since the plan was made" in result.output


# -- the state is bound to the catalog its items were confirmed at -------------------------------------
def test_plan_refuses_a_target_moved_to_another_catalog_naming_both(shop, sandbox):
    meta_url = sandbox.urls["meta_catalog"]
    moved = {"targets": {"meta": target("meta_catalog", meta_url, settings={"catalog_id": "999",
                                                                           "api_version": "v21.0"}),
                         "vend": target("venddor", sandbox.urls["venddor"])}}
    shop.write("targets.yaml", moved)
    before = writes(sandbox)
    for command in (["plan"], ["apply", "--auto-approve"]):
        result = shop.run(*command)
        assert result.exit_code == 1, result.output
        assert "target meta now names another catalog than the one its 10 items in the state were confirmed at" \
            in result.output
        assert f"then: meta_catalog at {meta_url}, catalog_id 1234567890" in result.output
        assert f"now:  meta_catalog at {meta_url}, catalog_id 999" in result.output
        assert "`reconciler state rm -t meta --all`" in result.output and "`reconciler import -t meta`" in result.output
    assert writes(sandbox) == before
    # the way on: forget the old catalog's items; the next plan creates every item at the new one
    assert shop.run("state", "rm", "-t", "meta", "--all").exit_code == 0
    result = shop.run("apply", "--auto-approve", "--allow-mass-delete")
    assert result.exit_code == 0, result.output
    assert len(sandbox.catalog("meta_catalog", catalog_id="999")) == 10
    state = State(shop.state_location, create=False)
    assert state.identities()["meta"]["catalog_id"] == "999"
    state.close()


def test_import_adopts_the_new_catalog_of_a_moved_target(shop, sandbox):
    meta_url = sandbox.urls["meta_catalog"]
    shop.write("targets.yaml", {"targets": {
        "meta": target("meta_catalog", meta_url, settings={"catalog_id": "555", "api_version": "v21.0"}),
        "vend": target("venddor", sandbox.urls["venddor"])}})
    assert shop.run("plan").exit_code == 1
    result = shop.run("import", "-t", "meta")
    assert result.exit_code == 0, result.output
    assert "10 items of the state were confirmed at the target's previous catalog" in result.output
    plan = shop.run("plan", "-t", "meta")
    assert plan.exit_code == 0 and "Plan: 10 to create, 0 to update, 0 to delete." in plan.stdout


def test_apply_records_the_identity_and_refuses_a_moved_target_itself(shop, sandbox):
    """The library's apply checks again under the lock (a plan made before the move)."""
    from reconciler.apply import NullReporter, apply_plan
    from reconciler.errors import TargetMovedError
    from reconciler.manifest.loader import load
    from reconciler.plan import build_plan
    from reconciler.plan.binding import identity

    manifests = load(shop.manifests)
    state = State(shop.state_location)
    try:
        assert state.identities() == {name: identity(t) for name, t in manifests.targets.items()}
        plan = build_plan(manifests, state)
        meta = manifests.targets["meta"]
        elsewhere = {**manifests.targets, "meta": meta.model_copy(
            update={"settings": {"catalog_id": "777", "api_version": "v21.0"}})}
        before = writes(sandbox)
        with pytest.raises(TargetMovedError, match="catalog_id 777"):
            apply_plan(plan, elsewhere, state, reporter=NullReporter())
        assert writes(sandbox) == before
    finally:
        state.close()


# -- the mass-delete guard at apply ---------------------------------------------------------------------
def test_a_mass_delete_plan_needs_the_flag_at_plan_and_at_apply(shop, sandbox):
    shop.write("products.yaml", {"products": catalog(2)})
    assert shop.run("plan", "-o", str(shop.planfile)).exit_code == 1  # the guard, as before
    assert shop.run("plan", "-o", str(shop.planfile), "--allow-mass-delete").exit_code == 0
    before = writes(sandbox)
    result = shop.run("apply", str(shop.planfile))
    assert result.exit_code == 1
    assert "target meta: the plan deletes 8 of 10 items, more than max_delete_fraction 0.1 allows. Nothing was " \
           "sent: it was made with --allow-mass-delete: apply it with --allow-mass-delete too." in result.output
    assert writes(sandbox) == before
    # a plan file claiming it was made without the flag is refused even with the flag at apply
    lines = lines_of(shop.planfile)
    del lines[0]["allow_mass_delete"]
    write_lines(shop.planfile, lines, redigest=True)
    result = shop.run("apply", str(shop.planfile), "--allow-mass-delete")
    assert result.exit_code == 1 and "a plan that does must be made with --allow-mass-delete" in result.output
    assert writes(sandbox) == before
    assert shop.run("plan", "-o", str(shop.planfile), "--allow-mass-delete").exit_code == 0
    result = shop.run("apply", str(shop.planfile), "--allow-mass-delete")
    assert result.exit_code == 0, result.output
    assert len(sandbox.catalog("meta_catalog", catalog_id="1234567890")) == 2


# -- random mutations ---------------------------------------------------------------------------------
@st.composite
def mutations(draw, data: bytes):
    """A mutated copy of the plan file ``data``: a byte changed, removed or added; a
    line removed, repeated or moved; or a JSON value replaced (with the digest made
    again, or not)."""
    lines = data.splitlines(keepends=True)
    kind = draw(st.sampled_from(["byte", "drop byte", "insert byte", "drop line", "repeat line", "move line",
                                 *["json value"] * 4]))  # the value changes reach the deepest checks
    if kind == "byte":
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    if kind == "drop byte":
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + data[at + 1:]
    if kind == "insert byte":
        at = draw(st.integers(0, len(data)))
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at:]
    index = draw(st.integers(0, len(lines) - 1))
    if kind == "drop line":
        return b"".join(lines[:index] + lines[index + 1:])
    if kind == "repeat line":
        return b"".join(lines[:index + 1] + lines[index:])
    if kind == "move line":
        moved = lines[:index] + lines[index + 1:]
        to = draw(st.integers(0, len(moved)))
        return b"".join(moved[:to] + [lines[index]] + moved[to:])
    parsed = [orjson.loads(line) for line in lines]
    path, node = [], parsed[index]
    while isinstance(node, (dict, list)) and node and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        path.append(key)
        node = node[key]
    value = draw(st.one_of(st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=False),
                           st.text(max_size=8), st.just({}), st.just([]), st.sampled_from(["explode", "delete"])))
    if path:
        holder = parsed[index]
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = value
    else:
        parsed[index] = value
    body = b"".join(orjson.dumps(line) + b"\n" for line in parsed[:-1])
    if draw(st.booleans()) and isinstance(parsed[-1], dict):  # made again, as a hostile editor would
        parsed[-1] = {"end_of_plan": {"changes": len(parsed) - 2,
                                      "blake2b": hashlib.blake2b(body, digest_size=32).hexdigest()}}
    return body + orjson.dumps(parsed[-1]) + b"\n"


def applied(plan) -> tuple:
    """What of a plan decides what is sent: not ``state_serial`` nor ``orphaned_targets``,
    which only inform (with per-target serials, another target may move the state's
    serial on; the digest still refuses a file in which they were changed by accident)."""
    return plan.lineage, plan.target_serials, plan.allow_mass_delete, plan.refreshed, plan.targets


def test_random_mutations_are_refused_or_leave_the_plan_as_it_was(shop, sandbox, monkeypatch):
    # Credentials come from variables left unset: a file that passes every check stops
    # at the credentials, so no example can write to the sandbox.
    shop.write("targets.yaml", {"targets": {
        "meta": target("meta_catalog", sandbox.urls["meta_catalog"], auth={"access_token": "${NO_META_TOKEN}"}),
        "vend": target("venddor", sandbox.urls["venddor"],
                       auth={"username": "${NO_VENDDOR_USER}", "password": "${NO_VENDDOR_PASSWORD}"})}})
    monkeypatch.delenv("NO_META_TOKEN", raising=False)
    assert shop.run("plan", "-o", str(shop.planfile)).exit_code == 0
    original = shop.planfile.read_bytes()
    plan = plan_file.load(shop.planfile)
    before = writes(sandbox)

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(mutations(original))
    def check(mutated: bytes):
        assume(mutated != original)
        shop.planfile.write_bytes(mutated)
        result = shop.run("apply", str(shop.planfile))
        assert result.exit_code == 1 and "Traceback" not in result.output
        message = result.output.removeprefix("Error: ")
        assert result.output.startswith("Error: ") and message.strip()
        if message.startswith("nothing was applied:") and "is not set" in message:
            assert applied(plan_file.load(shop.planfile)) == applied(plan)  # every check passed: the plan saved

    check()
    assert writes(sandbox) == before


# -- the documentation stays true ---------------------------------------------------------------------
DOC = Path(__file__).resolve().parent.parent / "docs" / "saved-plans.md"


def test_the_messages_the_doc_names_are_the_codes():
    source = "".join(path.read_text() for path in (DOC.parent.parent / "reconciler").rglob("*.py"))
    table = DOC.read_text().split("| check |", 1)[1].split("\n\n", 1)[0]
    starts = [cell for row in table.splitlines()[2:] for cell in re.findall(r"`([^`]+)`", row.split("|")[3])]
    assert len(starts) >= 9
    for start in starts:  # each piece between placeholders (…, T, N, M) is written so in the code
        for piece in re.split(r"…|\b[TNM]\b", start):
            assert piece.strip(" ,:") in source, (start, piece)


def test_the_doc_names_every_key_of_the_header_and_no_other():
    from reconciler.plan.model import Plan, TargetPlan

    table = DOC.read_text().split("| key | what it is |", 1)[1].split("\n\n", 1)[0]
    named = [re.match(r"\| `(\w+)` \|", row).group(1) for row in table.splitlines()[2:]]
    fullest = Plan("L", 3, {"t": TargetPlan("t", "venddor", (), 1, {"provider": "0" * 16})}, target_serials={"t": 2},
                   orphans={"gone": 4}, allow_mass_delete=True, refreshed=True)
    assert named == list(fullest.to_json(changes=False))


def test_the_doc_shows_the_file_as_it_is_written(shop):
    example = DOC.read_text().split("## The file", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    shown = [orjson.loads(line.replace("{…}", "{}")) for line in example.splitlines()]
    written = lines_of(shop.planfile)
    assert shown[0].keys() == written[0].keys() - {"orphaned_targets"}
    assert [list(t) for t in shown[0]["targets"].values()] == [list(t) for t in written[0]["targets"].values()][:1]
    assert list(shown[0]["targets"]["meta-us"]["fingerprint"]) == list(written[0]["targets"]["meta"]["fingerprint"])
    assert list(shown[1]) == list(written[1]) and list(shown[-1]["end_of_plan"]) == list(written[-1]["end_of_plan"])
