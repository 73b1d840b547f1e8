"""Errors that teach: a field's error is at the field's own line (YAML, JSON; a JSON
line is its line), an unknown name comes with the closest known one, a wrong GTIN check
digit with the right one, and an unknown CSV column is said once, not on every row."""
from __future__ import annotations

from conftest import product, target


def errors(result) -> list[str]:
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    return [line.strip() for line in result.output.splitlines()[1:]]


TARGETS = {"targets": {"meta-us": target("meta_catalog"), "vouch": target("voucherify")}}


def test_field_lines_in_yaml_json_and_json_lines(ws):
    ws.write("targets.yaml", TARGETS)
    ws.write("p.yaml", """\
        products:
          - sku: A
            name: Mug
            price: -1
            targets:
              - meta-us
              - meta-su
            overrides:
              vouch:
                metadata: {k: v}
                nmae: x
        """)
    ws.write("q.json", """\
        {"products": [
          {"sku": "B",
           "name": "Mug",
           "stock": -3,
           "overrides": {"vouch": {
              "metadata": {"k": "v"},
              "nmae": "x"}},
           "targets": ["vouch",
                       "vuoch"]}
        ]}
        """)
    ws.write("r.jsonl", [product("C"), product("D", price=-1, overrides={"vouch": {"nmae": "x"}})])
    assert errors(ws.run("validate")) == [
        "manifests/p.yaml:4: sku A: price: Input should be greater than or equal to 0",
        "manifests/q.json:4: sku B: stock: Input should be greater than or equal to 0",
        "manifests/r.jsonl:2: sku D: price: Input should be greater than or equal to 0",
    ]
    # once the values are right, the names are checked, each at its own line too
    for name in ("p.yaml", "q.json"):
        path = ws.manifests / name
        path.write_text(path.read_text().replace("-1", "1").replace("-3", "3"))
    ws.write("r.jsonl", [product("C"), product("D", overrides={"vouch": {"nmae": "x"}})])
    out = errors(ws.run("validate"))
    for line in ["manifests/p.yaml:7: sku A: unknown target 'meta-su' (did you mean 'meta-us'?)",
                 "manifests/p.yaml:11: sku A: overrides.vouch: voucherify has no field 'nmae' (it takes metadata)",
                 "manifests/q.json:7: sku B: overrides.vouch: voucherify has no field 'nmae' (it takes metadata)",
                 "manifests/q.json:9: sku B: unknown target 'vuoch' (did you mean 'vouch'?)",
                 "manifests/r.jsonl:2: sku D: overrides.vouch: voucherify has no field 'nmae' (it takes metadata)"]:
        assert line in out, out
    # what a target requires of a product (a description...) is about the whole product: its first line
    required = [line for line in out if "requires" in line]
    assert "manifests/p.yaml:2: sku A: target meta-us (meta_catalog) requires description" in required
    assert "manifests/q.json:2: sku B: target vouch (voucherify) requires metadata" in required
    assert all(line.startswith(("manifests/p.yaml:2: sku A:", "manifests/q.json:2: sku B:")) for line in required)


def test_what_is_about_the_whole_product_stays_at_its_first_line(ws):
    ws.write("targets.yaml", TARGETS)
    ws.write("p.yaml", """\
        products:
          - sku: A
            name: Mug
            metadata: {k: v}
          - sku: A
            name: Mug again
            metadata: {k: v}
        """)
    out = errors(ws.run("validate"))
    assert "manifests/p.yaml:2: sku A: target meta-us (meta_catalog) requires description" in out
    assert "manifests/p.yaml:5: sku A: duplicate sku, first defined at manifests/p.yaml:2" in out


def test_unknown_names_come_with_the_closest_known_one(ws):
    ws.write("targets.yaml", """\
        targets:
          meta-us:
            provider: meta_catalog
            auth: {access_token: x}
            settings:
              catalog_id: "1"
              api_verison: v21.0
            selcet: {tags: [a]}
            limits:
              max_in_fligth: 2
          bloom:
            provider: bloomreech
          shop:
            provider: shopify
        """)
    ws.write("p.yaml", "products:\n  - sku: A\n    prcie: 1\n")
    out = errors(ws.run("validate"))
    assert out == [
        "manifests/p.yaml:3: sku A: prcie: unknown field (did you mean 'price'?)",
        "manifests/targets.yaml:7: target 'meta-us': settings.api_verison: unknown field (did you mean 'api_version'?)",
        "manifests/targets.yaml:8: target 'meta-us': selcet: unknown field (did you mean 'select'?)",
        "manifests/targets.yaml:10: target 'meta-us': limits.max_in_fligth: unknown field "
        "(did you mean 'max_in_flight'?)",
        "manifests/targets.yaml:12: target 'bloom': unknown provider 'bloomreech' (did you mean 'bloomreach'?)",
        "manifests/targets.yaml:14: target 'shop': unknown provider 'shopify' "
        "(expected one of vtex_ads, meta_catalog, bloomreach, venddor, voucherify)",
    ]
    ws.write("targets.yaml", TARGETS)
    ws.write("p.yaml", "products:\n  - sku: A\n    colour: red\n")
    assert ("manifests/p.yaml:3: sku A: colour: unknown field (expected one of sku, name, description, url, "
            "image_url, brand, additional_image_urls, categories, tags, gtin, price, sale_price and 10 more)"
            ) in errors(ws.run("validate"))
    ws.write("p.yaml", "products:\n  - sku: A\n    metadata: {k: v}\n    targets: [vouch, meta-su, nowhere]\n")
    assert errors(ws.run("validate")) == [
        "manifests/p.yaml:4: sku A: unknown target 'meta-su' (did you mean 'meta-us'?)",
        "manifests/p.yaml:4: sku A: unknown target 'nowhere' (expected one of meta-us, vouch)",
    ]


def test_an_unknown_top_level_key_too(ws):
    ws.write("a.yaml", "product:\n  - sku: A\n")
    ws.write("b.json", '{"targets": {},\n "items": []}')
    assert errors(ws.run("validate")) == [
        "manifests/a.yaml:1: unknown top-level key 'product' (did you mean 'products'?)",
        "manifests/b.json:2: unknown top-level key 'items' (expected one of targets, products)",
    ]


def test_a_wrong_gtin_says_what_its_check_digit_should_be(ws):
    ws.write("targets.yaml", TARGETS)
    ws.write("p.jsonl", [product("A", gtin="7891404130314"), product("B", gtin="12345"),
                         product("C", gtin="7891-0000"), product("D", gtin="7891404130317")])
    assert errors(ws.run("validate")) == [
        "manifests/p.jsonl:1: sku A: gtin: '7891404130314' ends in 4, but its check digit is 7 (7891404130317)",
        "manifests/p.jsonl:2: sku B: gtin: '12345' has 5 digits; a GTIN has 8, 12, 13 or 14",
        "manifests/p.jsonl:3: sku C: gtin: '7891-0000' is not a GTIN: digits only",
    ]


def test_an_unknown_csv_column_is_said_once_not_on_every_row(ws):
    ws.write("targets.yaml", {"targets": {"vouch": target("voucherify")}})
    rows = "".join(f"P{i},Mug {i},10.00,EUR,red,v\n" for i in range(20_000))
    ws.write("p.csv", "sku,name,prcie,currency,colour,metadata.k\n" + rows + "BAD,Mug,1,XYZ,red,v\n")
    out = errors(ws.run("validate"))
    assert out == [
        "manifests/p.csv:1: column 3 'prcie' is not a product field (did you mean 'price'?); its cells are not read",
        "manifests/p.csv:1: column 5 'colour' is not a product field (expected one of sku, name, description, url, "
        "image_url, brand, additional_image_urls, categories, tags, gtin, price, sale_price and 7 more); "
        "its cells are not read",
        "manifests/p.csv:20002: sku BAD: currency: currency 'XYZ' is not an ISO 4217 code",  # the rows are still read
    ]
    ws.write("p.csv", "sku,name,metadata,overrides.vouch\nA,Mug,v,x\n")
    assert errors(ws.run("validate")) == [
        "manifests/p.csv:1: column 3 'metadata': write it metadata.KEY",
        "manifests/p.csv:1: column 4 'overrides.vouch': write it overrides.TARGET.FIELD",
        "manifests/p.csv:2: sku A: target vouch (voucherify) requires metadata",
    ]
