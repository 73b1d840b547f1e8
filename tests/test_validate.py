"""`reconciler validate`: every manifest error, located, all at once, exit 1."""
from __future__ import annotations

import pytest

from conftest import product, target
from reconciler.providers import get_provider, names, register, unregister


def test_valid_workspace_in_every_format(ws):
    ws.write("targets.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("a/products.yaml", {"products": [product("A-1")]})
    ws.write("b/products.json", {"products": [product("B-1")]})
    ws.write("c/products.jsonl", [product("C-1"), product("C-2")])
    ws.write("d/products.csv", "sku,name,description,url,image_url,brand,categories,price,currency,metadata.k\n"
                               "D-1,Mug,Nice,https://x/d,https://x/d.jpg,Acme,Home|Kitchen,3.50,EUR,v\n")
    result = ws.run("validate")
    assert result.exit_code == 0, result.output
    assert "Valid: 1 targets, 5 products." in result.output


def test_every_error_reported_at_once_with_file_line_and_sku(ws):
    ws.write("targets.yaml", """\
        targets:
          meta:
            provider: meta_catalog
            auth: {access_token: x}
            settings: {catalog_id: "1", api_version: v21.0}
          bloom:
            provider: bloomreach
            auth: {key_id: k, key_secret: s}
            settings: {project_id: p, catalog_id: c}
          shop:
            provider: venddor
            auth: {username: u, password: p}
            select: {tags: [venddor]}
          weird:
            provider: amazon
        """)
    ws.write("products.yaml", """\
        products:
          - sku: GOOD
            name: n
            description: d
            url: u
            image_url: i
            brand: b
            price: 1
            currency: USD
          - sku: BAD-GTIN
            gtin: "7891404130314"
          - sku: NEG
            price: -1
          - sku: CUR
            currency: XYZ
          - sku: ""
          - sku: SLASH/1
            targets: [bloom]
          - sku: NOGTIN
            tags: [venddor]
            targets: [shop]
            name: n
            price: 2
          - sku: UNKNOWN-T
            targets: [nowhere]
          - sku: UNKNOWN-O
            targets: [bloom]
            overrides: {elsewhere: {title: x}}
        """)
    ws.write("more.jsonl", [product("GOOD")])
    result = ws.run("validate")
    assert result.exit_code == 1
    out = result.output
    assert "Traceback" not in out
    # each at its field's own line; what is about the whole product (what a target
    # requires, a duplicate) at the product's first line
    expected = [
        "manifests/targets.yaml:15: target 'weird': unknown provider 'amazon'",
        "manifests/products.yaml:11: sku BAD-GTIN: gtin: '7891404130314' ends in 4, but its check digit is 7 "
        "(7891404130317)",
        "manifests/products.yaml:13: sku NEG: price: Input should be greater than or equal to 0",
        "manifests/products.yaml:15: sku CUR: currency: currency 'XYZ' is not an ISO 4217 code",
        "manifests/products.yaml:16: sku: must not be empty or blank",
        "manifests/products.yaml:17: sku SLASH/1: target bloom (bloomreach) cannot take an item_id with '/'",
        "manifests/products.yaml:19: sku NOGTIN: target shop (venddor) requires gtin",
        "manifests/products.yaml:25: sku UNKNOWN-T: unknown target 'nowhere'",
        "manifests/products.yaml:28: sku UNKNOWN-O: unknown target 'elsewhere'",
        "manifests/more.jsonl:1: sku GOOD: duplicate sku, first defined at manifests/products.yaml:2",
    ]
    for line in expected:
        assert line in out, f"missing {line!r} in:\n{out}"
    # The GOOD product is routed to meta (no select) and is valid there.
    assert "sku GOOD: target meta" not in out


def test_provider_requirements_name_target_sku_and_field(ws):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog"), "vtex": target("vtex_ads"),
                                    "vouch": target("voucherify")}})
    ws.write("p.yaml", {"products": [{"sku": "X", "price": "1"}]})
    out = ws.run("validate").output
    for field in ("name", "description", "url", "image_url", "currency"):
        assert f"sku X: target meta (meta_catalog) requires {field}" in out
    assert "sku X: target meta (meta_catalog) requires brand or gtin" in out
    for field in ("name", "url", "image_url", "categories"):
        assert f"sku X: target vtex (vtex_ads) requires {field}" in out
    assert "sku X: target vouch (voucherify) requires metadata" in out


def test_duplicate_target_names_both_places(ws):
    ws.write("a.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("b.yaml", {"targets": {"meta": target("meta_catalog")}})
    out = ws.run("validate").output
    assert "manifests/b.yaml:2: target 'meta' is already defined at manifests/a.yaml:2" in out


def test_target_settings_and_names_checked(ws):
    ws.write("a.yaml", {"targets": {"Bad Name": target("voucherify"),
                                    "meta": {"provider": "meta_catalog", "auth": {"access_token": "${T}"}}}})
    out = ws.run("validate").output
    assert "target 'Bad Name': name: target name 'Bad Name' must match" in out
    assert "target 'meta': settings.catalog_id is required by meta_catalog" in out


@pytest.fixture
def every_provider():
    """The registered providers and the tests' sixth one (tests/fake_provider/)."""
    register("fakeshop", "fake_provider:FakeShop")
    try:
        yield names()
    finally:
        unregister("fakeshop")


NOT_A_NAME = {"null": "null", "empty": '""', "blank": '"  "', "mapping": "{}", "list": "[]", "boolean": "true"}


def test_required_settings_refuse_null_empty_and_wrong_types(ws, every_provider):
    """Every provider's required settings (a catalog id, an API version, a shop):
    a value that names nothing is an error at its own line, and a number is its text."""
    lines, expected, checked = ["targets:"], [], set()
    for provider_name in every_provider:
        provider = get_provider(provider_name)
        for key in provider.settings_model.required():
            checked.add(provider_name)
            for case, bad in NOT_A_NAME.items():
                name = f"{provider_name.replace('_', '-')}-{key.replace('_', '-')}-{case}"
                lines += [f"  {name}:", f"    provider: {provider_name}",
                          "    auth: {" + ", ".join(f"{auth}: x" for auth in provider.auth_keys) + "}",
                          "    settings:"]
                for other in provider.settings_model.required():
                    lines.append(f"      {other}: {bad if other == key else 12}")
                    if other == key:
                        expected.append(f"manifests/t.yaml:{len(lines)}: target {name!r}: settings.{key}: ")
    assert {"meta_catalog", "bloomreach", "fakeshop"} <= checked
    ws.write("t.yaml", "\n".join(lines) + "\n")
    result = ws.run("validate")
    assert result.exit_code == 1 and "Traceback" not in result.output
    problems = [line.strip() for line in result.output.splitlines() if line.startswith("  manifests/")]
    for where in expected:
        assert sum(problem.startswith(where) for problem in problems) == 1, (where, result.output)
    assert len(problems) == len(expected), result.output
    assert "settings.catalog_id: must not be empty" in result.output


def test_a_name_inside_a_target_is_an_error_at_its_line(ws):
    """The target's name is its key: a `name:` under it, equal or not, would be lost."""
    ws.write("t.yaml", """\
        targets:
          meta:
            provider: meta_catalog
            name: meta-us
            auth: {access_token: x}
            settings: {catalog_id: "1", api_version: v21.0}
            max_delete_fraction: 2
        """)
    ws.write("t.json", '{"targets": {"vouch": {"provider": "voucherify",\n'
                       '  "auth": {"app_id": "a", "app_token": "t"},\n  "name": "vouch"}}}\n')
    result = ws.run("validate")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("manifests/t.yaml:4: target 'meta': name: unknown field (a target's name is its key under "
            "`targets:`)") in result.output
    assert "manifests/t.yaml:7: target 'meta': max_delete_fraction:" in result.output  # all errors at once
    assert "manifests/t.json:3: target 'vouch': name: unknown field" in result.output
    assert "Error: 3 manifest errors:" in result.output


def test_a_schema_address_is_a_top_level_key_the_loader_ignores(ws):
    """Editors find a file's JSON Schema by its `$schema` key (docs/editors.md)."""
    ws.write("t.json", {"$schema": "../reconciler.schema.json", "targets": {"meta": target("meta_catalog")}})
    ws.write("p.yaml", "$schema: ../reconciler.schema.json\nproducts:\n  - {sku: A, name: n, description: d, "
                       "url: u, image_url: i, brand: b, price: 1, currency: USD}\n")
    result = ws.run("validate")
    assert result.exit_code == 0, result.output
    assert "Valid: 1 targets, 1 products." in result.output
    ws.write("bad.json", '{"products": [],\n "$schema": {"url": "x"}}\n')
    ws.write("bad.yaml", "products: []\n$schema: [x]\n")
    result = ws.run("validate")
    assert result.exit_code == 1 and "Traceback" not in result.output
    for where in ("manifests/bad.json:2", "manifests/bad.yaml:2"):
        assert f"{where}: `$schema` must be a string: the address of a JSON Schema, for editors" in result.output
    assert "Error: 2 manifest errors:" in result.output


def test_malformed_files_are_located(ws):
    ws.write("a.yaml", "products:\n  - sku: A\n    name: [unclosed\n")
    ws.write("b.json", '{"products": [\n  {"sku": "B",}\n]}\n')
    ws.write("c.jsonl", '{"sku": "C1", "metadata": {"k": "v"}}\n{"sku": \n')
    ws.write("d.csv", 'sku,name\nD1,"unterminated\n')
    ws.write("e.csv", 'sku,name\nE1,a,extra\n')
    result = ws.run("validate")
    out = result.output
    assert result.exit_code == 1
    assert "manifests/a.yaml:4: invalid YAML" in out
    assert "manifests/b.json:2: invalid JSON" in out
    assert "manifests/c.jsonl:2: invalid JSON" in out
    assert "manifests/d.csv:2: invalid CSV" in out
    assert "manifests/e.csv:2: sku E1: row has 3 cells, the header has 2" in out


def test_unknown_product_field_and_json_lines(ws):
    ws.write("p.json", {"products": [product("A"), product("B", colour="red")]})
    out = ws.run("validate").output
    # orjson's indented dump puts the second product's sku on line 22
    assert "manifests/p.json:" in out and "sku B: colour: unknown field" in out


def test_env_references_stay_unresolved_for_validate_and_plan(ws, monkeypatch):
    monkeypatch.delenv("META_TOKEN", raising=False)
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog", auth={"access_token": "${META_TOKEN}"})}})
    ws.write("p.yaml", {"products": [product("A")]})
    assert ws.run("validate").exit_code == 0
    result = ws.run("plan")
    assert result.exit_code == 0
    assert "${META_TOKEN}" not in result.output


def test_verbose_shows_traceback_otherwise_not(ws):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("p.yaml", {"products": [{"sku": "A", "price": "x"}]})
    quiet = ws.run("validate")
    assert quiet.exit_code == 1 and "Traceback" not in quiet.output
    loud = ws.run("-v", "validate")
    assert loud.exit_code == 1 and "Traceback" in loud.output


def test_settings_typos_and_bad_values_are_located_errors(ws):
    ws.write("targets.yaml", """\
        targets:
          bloom:
            provider: bloomreach
            auth: {key_id: k, key_secret: s}
            settings: {project_id: p, catalog_id: c, update_mode: fulll, feilds: [title]}
          meta:
            provider: meta_catalog
            auth: {access_token: x}
            settings: {catalog_id: 1234567890, api_version: v21.0}
          vtex:
            provider: vtex_ads
            auth: {app_id: a, api_key: k}
            settings: {store: s1}
        """)
    ws.write("p.yaml", {"products": [product("A")]})
    result = ws.run("validate")
    assert result.exit_code == 1 and "Traceback" not in result.output
    out = result.output
    # at the line of the setting (a flow mapping: the line of `settings:`), with the closest known key
    assert "manifests/targets.yaml:5: target 'bloom': settings.update_mode: Input should be 'full' or 'partial'" in out
    assert "manifests/targets.yaml:5: target 'bloom': settings.feilds: unknown field (did you mean 'fields'?)" in out
    assert "manifests/targets.yaml:13: target 'vtex': settings.store: unknown field\n" in out  # it takes none
    assert "target 'meta'" not in out  # a numeric catalog id is read as text, as before


def test_override_keys_a_provider_does_not_take_are_located_errors(ws):
    ws.write("t.yaml", {"targets": {"meta-us": target("meta_catalog"), "vouch": target("voucherify"),
                                    "bloom": target("bloomreach", settings={
                                        "project_id": "p", "catalog_id": "c", "fields": ["title", "price"]}),
                                    "open": target("bloomreach")}})
    ws.write("p.yaml", """\
        products:
          - sku: A
            name: n
            description: d
            url: u
            image_url: i
            brand: b
            price: 1
            currency: USD
            metadata: {k: v}
            overrides:
              meta-us: {nmae: Special, color: red}
              vouch: {metadata: {k: w}, name: x}
              bloom: {titel: x}
              open: {anything: goes}
        """)
    result = ws.run("validate")
    assert result.exit_code == 1 and "Traceback" not in result.output
    out = result.output
    assert ("manifests/p.yaml:12: sku A: overrides.meta-us: meta_catalog has no field 'nmae' "
            "(did you mean 'name'?)") in out
    assert "overrides.meta-us: meta_catalog has no field 'color'" not in out  # a documented Meta field
    assert "manifests/p.yaml:13: sku A: overrides.vouch: voucherify has no field 'name' (it takes metadata)" in out
    assert "manifests/p.yaml:14: sku A: overrides.bloom: bloomreach has no field 'titel' (did you mean 'title'?)" in out
    assert "overrides.open" not in out  # a catalog without settings.fields defines its own properties
    assert "Error: 3 manifest errors:" in out
