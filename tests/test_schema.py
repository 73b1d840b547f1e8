"""`reconciler schema` and the schema `init` writes: valid draft 2020-12, true to the
example workspace, and refusing every bad manifest of the suite that a schema can see
(each refused by `reconciler validate` too, so the two agree), the hostile corpus
(tests/hostile/) included. Patterns are run as editors run them: ECMA-262."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import regress
import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from conftest import ANY_PRODUCT_TARGET, product, target
from reconciler.cli import cli
from reconciler.manifest.models import Target
from reconciler.manifest.schema import DIALECT, FILE_NAME, MODELINE, manifest_schema
from reconciler.providers import names

REPO = Path(__file__).resolve().parent.parent


def ecma_pattern(validator, pattern, instance, schema):
    """``pattern`` as editors run it: an ECMA-262 regular expression with the ``u`` flag
    (the models' patterns use Unicode properties, ``\\p{Cc}``, which Python's ``re``,
    jsonschema's default, does not know)."""
    if validator.is_type(instance, "string") and regress.Regex(pattern, "u").find(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = validators.extend(Draft202012Validator, {"pattern": ecma_pattern})


# Formats of the draft's metaschema, with `regex` read as ECMA-262 (with `u`) too.
FORMATS = FormatChecker()
FORMATS.checks("regex", raises=regress.RegressError)(lambda pattern: bool(regress.Regex(pattern, "u")))


def check(schema: dict) -> None:
    """A valid draft 2020-12 schema (its patterns valid ECMA-262 expressions)."""
    Draft202012Validator(Draft202012Validator.META_SCHEMA, format_checker=FORMATS).validate(schema)


def schema_of(ws) -> dict:
    result = ws.run("schema")
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def errors(schema: dict, document) -> list[str]:
    return [e.message for e in Validator(schema).iter_errors(document)]


def of_a_line(schema: dict) -> dict:
    """The schema of a JSON Lines line: the manifest schema's product."""
    return {"$schema": DIALECT, "$defs": schema["$defs"], "$ref": "#/$defs/product"}


def line_errors(schema: dict, line: bytes) -> list[str]:
    return errors(of_a_line(schema), orjson.loads(line))


def manifest_errors(schema: dict, path: Path) -> list[str]:
    if path.suffix == ".jsonl":
        return [e for line in path.read_bytes().splitlines() if line.strip() for e in line_errors(schema, line)]
    document = orjson.loads(path.read_bytes()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    return errors(schema, document)


def test_the_schema_is_draft_2020_12_with_every_provider():
    for schema in (manifest_schema(), manifest_schema({"a": None})):
        check(schema)
        assert schema["$schema"] == DIALECT
        assert schema["$defs"]["target"]["properties"]["provider"]["enum"] == list(names())
        for name in names():
            assert f"{name}.settings" in schema["$defs"]


def test_the_example_workspace_is_valid(tmp_path):
    result = CliRunner().invoke(cli, ["-C", str(REPO), "schema", "-o", str(tmp_path / FILE_NAME)])
    assert result.exit_code == 0, result.output
    schema = orjson.loads((tmp_path / FILE_NAME).read_bytes())
    check(schema)
    files = sorted((REPO / "manifests").rglob("*.*"))
    assert {p.suffix for p in files} >= {".yaml", ".json", ".jsonl", ".csv"}
    for path in files:
        # CSV cells are text, read by the loader's column rules: no editor checks them with a JSON Schema
        if path.suffix != ".csv":
            assert manifest_errors(schema, path) == [], path
    # made for these targets: their names, and what their overrides may set
    product_schema = schema["$defs"]["product"]["properties"]
    assert set(product_schema["overrides"]["anyOf"][0]["properties"]) == {
        "vtex-ads", "meta-us", "bloom-eu", "venddor-br", "voucherify"}


def test_init_writes_the_schema_beside_the_manifests_and_names_it(tmp_path):
    shop = tmp_path / "shop"
    result = CliRunner().invoke(cli, ["init", str(shop)])
    assert result.exit_code == 0, result.output
    assert f"created {shop / FILE_NAME}" in result.output
    catalog = shop / "manifests" / "catalog.yaml"
    first = catalog.read_text().splitlines()[0]
    assert first == MODELINE
    # the modeline's path, relative to the manifest as the YAML language server reads it
    written = (catalog.parent / first.split("$schema=")[1]).resolve()
    assert written == (shop / FILE_NAME).resolve()
    schema = orjson.loads(written.read_bytes())
    check(schema)
    assert manifest_errors(schema, catalog) == []
    # the same as `reconciler schema` prints there
    printed = CliRunner().invoke(cli, ["-C", str(shop), "schema"])
    assert printed.exit_code == 0 and printed.stdout == written.read_text()
    refused = CliRunner().invoke(cli, ["init", str(shop)])
    assert refused.exit_code == 1 and f"overwrite {shop / FILE_NAME}" in refused.output


def test_valid_manifests_of_the_suite_are_valid(ws):
    ws.write("targets.yaml", {"targets": {"meta": target("meta_catalog"), "bloom": target("bloomreach"),
                                          "vtex": target("vtex_ads", limits={"max_in_flight": 2}),
                                          "shop": target("venddor", select={"tags": ["venddor"]}),
                                          "vouch": target("voucherify", max_delete_fraction=0.5)}})
    ws.write("numeric.yaml", """\
        targets:
          meta2:
            provider: meta_catalog
            auth: {access_token: "${META_TOKEN}"}
            settings: {catalog_id: 1234567890, api_version: v21.0}
        """)
    ws.write("a.yaml", {"products": [product("A-1"), product("A-2", price=3, gtin="4006381333931", tags=["venddor"],
                                                                 targets=["shop", "meta"], status="hidden",
                                                                 overrides={"meta": {"name": "M"}, "bloom": {"x": 1},
                                                                            "vouch": {"metadata": None}})]})
    ws.write("b.json", {"products": [product("B-1", sale_price="1.5", attributes={"k": [1, {"a": None}]})]})
    ws.write("c.jsonl", [product("C-1"), product("C-2", metadata={"n": 1, "f": 1.5, "b": True, "z": None})])
    ws.write("d.json", {"$schema": f"../{FILE_NAME}", "products": [product("D-1")]})
    assert ws.run("validate").exit_code == 0
    schema = schema_of(ws)
    for path in ws.manifests.iterdir():
        assert manifest_errors(schema, path) == [], path


TARGETS = {"targets": {
    "meta": target("meta_catalog"),
    "bloom": target("bloomreach", settings={"project_id": "p", "catalog_id": "c", "fields": ["title", "price"]}),
    "vouch": target("voucherify"),
}}

# Every bad manifest of the suite that a schema can see, as (file name, content). The
# others are not a schema's: broken syntax, duplicates across items or files, what a
# provider requires of the products routed to it, a GTIN's check digit, a CSV's cells.
BAD = {
    # targets
    "unknown provider": {"targets": {"weird": {"provider": "amazon"}}},
    "no provider": {"targets": {"t": {"auth": {}}}},
    "target name": {"targets": {"Bad Name": target("voucherify")}},
    "settings missing": {"targets": {"m": {"provider": "meta_catalog", "auth": {"access_token": "${T}"}}}},
    "a setting missing": {"targets": {"m": target("meta_catalog", settings={"catalog_id": "1"})}},
    "setting typo": {"targets": {"b": target("bloomreach", settings={"project_id": "p", "catalog_id": "c",
                                                                     "feilds": ["title"]})}},
    "setting value": {"targets": {"b": target("bloomreach", settings={"project_id": "p", "catalog_id": "c",
                                                                      "update_mode": "fulll"})}},
    "a setting null": {"targets": {"m": target("meta_catalog", settings={"catalog_id": None, "api_version": "v21.0"})}},
    "a setting blank": {"targets": {"b": target("bloomreach", settings={"project_id": " ", "catalog_id": "c"})}},
    "a setting a mapping": {"targets": {"m": target("meta_catalog", settings={"catalog_id": "1", "api_version": {}})}},
    "setting of another provider": {"targets": {"v": target("vtex_ads", settings={"store": "s1"})}},
    "auth missing": {"targets": {"v": {"provider": "voucherify"}}},
    "an auth key missing": {"targets": {"v": target("voucherify", auth={"app_id": "a"})}},
    "auth value": {"targets": {"v": target("voucherify", auth={"app_id": "a", "app_token": 5})}},
    "a name in a target": {"targets": {"v": target("voucherify", name="v")}},
    "target field": {"targets": {"v": target("voucherify", selcet={"tags": ["a"]})}},
    "max_delete_fraction": {"targets": {"v": target("voucherify", max_delete_fraction=2)}},
    "limits": {"targets": {"v": target("voucherify", limits={"max_in_flight": 0})}},
    "targets not a mapping": {"targets": ["meta"]},
    # files
    "top-level key": {"product": []},
    "a schema address not text": {"$schema": 1},
    "products not a list": {"products": {"sku": "A"}},
    "product not a mapping": {"products": ["A"]},
    # products
    "no sku": {"products": [{"name": "n"}]},
    "blank sku": {"products": [product("")]},
    "unknown field": {"products": [product("A", colour="red")]},
    "gtin length": {"products": [product("A", gtin="12345")]},
    "gtin letters": {"products": [product("A", gtin="789140413031X")]},
    "negative price": {"products": [product("A", price=-1)]},
    "price text": {"products": [product("A", price="x")]},
    "price with a comma": {"products": [product("A", sale_price="8,99")]},
    "currency": {"products": [product("A", currency="XYZ")]},
    "availability": {"products": [product("A", availability="sold out")]},
    "stock": {"products": [product("A", stock=-1)]},
    "stock fraction": {"products": [product("A", stock=1.5)]},
    "metadata nested": {"products": [product("A", metadata={"k": {"a": 1}})]},
    "categories": {"products": [product("A", categories="Home")]},
    "unknown target": {"products": [product("A", targets=["nowhere"])]},
    "override of an unknown target": {"products": [product("A", overrides={"elsewhere": {"title": "x"}})]},
    "override typo": {"products": [product("A", overrides={"meta": {"nmae": "Special"}})]},
    "override a provider does not take": {"products": [product("A", overrides={"vouch": {"name": "x"}})]},
    "override outside a catalog's fields": {"products": [product("A", overrides={"bloom": {"titel": "x"}})]},
}


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_manifests_are_refused_by_the_schema_and_by_validate(ws, case, fmt):
    ws.write("targets.yaml", TARGETS)
    bad = ws.write(f"bad.{fmt}", BAD[case])
    result = ws.run("validate")
    assert result.exit_code == 1 and "manifests/bad." in result.output, result.output
    bad.unlink()  # the schema is made for the valid targets
    schema = schema_of(ws)
    bad = ws.write(f"bad.{fmt}", BAD[case])
    assert manifest_errors(schema, bad), f"{case}: the schema accepts what validate refuses:\n{result.output}"


@pytest.mark.parametrize("case", [name for name, doc in BAD.items() if "products" in doc
                                  and isinstance(doc["products"], list) and isinstance(doc["products"][0], dict)])
def test_bad_json_lines_are_refused_line_by_line(ws, case):
    ws.write("targets.yaml", TARGETS)
    schema = schema_of(ws)
    lines = ws.write("p.jsonl", [product("GOOD"), *BAD[case]["products"]]).read_bytes().splitlines()
    assert line_errors(schema, lines[0]) == []
    assert line_errors(schema, lines[1])
    result = ws.run("validate")
    assert result.exit_code == 1 and "manifests/p.jsonl:2" in result.output, result.output


HOSTILE = Path(__file__).parent / "hostile" / "cases"
# The hostile manifests (tests/hostile/, `validate` refuses each) that a parser reads but no
# schema can refuse, and why. Every other one a parser reads, the schema refuses.
BEYOND_A_SCHEMA = {
    **dict.fromkeys([
        "json_dup_auth.json", "json_dup_escaped_key.json", "json_dup_price.json", "json_dup_sku.json",
        "jsonl_dup_escaped_key.jsonl", "jsonl_dup_nested.jsonl", "jsonl_dup_price.jsonl", "jsonl_dup_sku.jsonl",
        "jsonl_dup_spaced_colon.jsonl", "yaml_dup_auth.yaml", "yaml_dup_metadata_flow.yaml", "yaml_dup_price.yaml",
        "yaml_dup_quoted_key.yaml", "yaml_dup_sku.yaml", "yaml_dup_top_level.yaml",
    ], "a key twice: the parser keeps one value, and the schema sees only that"),
    **dict.fromkeys([
        "yaml_alias_bomb.yaml", "yaml_alias_bomb_in_overrides.yaml", "yaml_alias_recursive.yaml",
        "yaml_alias_recursive_mapping.yaml", "yaml_tag_binary.yaml", "yaml_tag_set.yaml",
        "yaml_surrogate_escape.yaml",
    ], "YAML syntax (aliases, tags, escapes): resolved by the parser before a schema sees values"),
    **dict.fromkeys([
        "jsonl_price_decimals.jsonl", "yaml_price_jpy_decimals.yaml", "yaml_price_usd_3_decimals.yaml",
        "yaml_price_no_currency_decimals.yaml", "yaml_sale_price_decimals.yaml",
        "yaml_alias_small_ok_but_bad_price.yaml",
    ], "a price's decimals depend on its currency, and a JSON number keeps no exact decimals"),
    **dict.fromkeys([
        "jsonl_attributes_huge_int.jsonl", "yaml_attributes_huge_int.yaml", "yaml_metadata_huge_int.yaml",
    ], "what a target's provider can send of a value: the product's routing decides"),
}


def readable(case: Path) -> list | None:
    """The documents a standard parser reads from ``case`` (None: it refuses the file,
    a matter of syntax or encoding, not of a schema)."""
    try:
        if case.suffix == ".jsonl":
            return [("line", orjson.loads(line)) for line in case.read_bytes().splitlines() if line.strip()]
        if case.suffix == ".json":
            return [("file", orjson.loads(case.read_bytes()))]
        return [("file", yaml.safe_load(case.read_text(encoding="utf-8")))]
    except (ValueError, yaml.YAMLError, RecursionError):
        return None


@pytest.mark.parametrize("case", [p for p in sorted(HOSTILE.glob("*.*")) if p.suffix in (".yaml", ".json", ".jsonl")
                                  and readable(p) is not None], ids=lambda p: p.name)
def test_hostile_manifests_are_refused_unless_no_schema_can_see_why(case):
    targets = yaml.safe_load(ANY_PRODUCT_TARGET)["targets"]  # the corpus's own workspace
    schema = manifest_schema({name: Target.model_validate({**raw, "name": name}) for name, raw in targets.items()})
    found = [e for kind, doc in readable(case) for e in errors(of_a_line(schema) if kind == "line" else schema, doc)]
    if case.name in BEYOND_A_SCHEMA:
        assert found == [], f"the schema now refuses {case.name}: take it off BEYOND_A_SCHEMA"
    else:
        assert found, f"{case.name}: validate refuses it ({Path(f'{case}.out').read_text().strip()}), the schema not"


def test_schema_writes_a_file_and_refuses_a_missing_directory(ws, tmp_path):
    ws.write("targets.yaml", TARGETS)
    written = ws.run("schema", "-o", str(tmp_path / "s.json"))
    assert written.exit_code == 0 and written.stdout == ""
    assert orjson.loads((tmp_path / "s.json").read_bytes()) == schema_of(ws)
    refused = ws.run("schema", "-o", str(tmp_path / "no" / "s.json"))
    assert refused.exit_code == 1 and "the directory" in refused.output and "Traceback" not in refused.output


def test_the_editors_page_says_what_the_code_does():
    page = (REPO / "docs" / "editors.md").read_text()
    assert f"    {MODELINE}\n" in page
    assert f"    reconciler schema -o {FILE_NAME}\n" in page
    assert f'"url": "./{FILE_NAME}"' in page
    assert f'    {{"$schema": "../{FILE_NAME}", "targets": {{...}}}}\n' in page
    assert "#/$defs/product" in page and "product" in manifest_schema()["$defs"]
    help_text = CliRunner().invoke(cli, ["schema", "--help"]).output
    assert f"reconciler schema -o {FILE_NAME}" in help_text and MODELINE.lstrip("# ") in help_text
