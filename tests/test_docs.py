"""The documentation in docs/ stays true: every relative link of the README, docs/ and
the examples resolves inside the repository; the manifest reference lists exactly the
models' fields; the command line page lists every command and option of the click tree
and nothing else, and the exit codes the commands use; the plan and outcome JSON
examples have exactly the keys the code writes; the providers reference matches each
provider's declared data and default mapping."""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner

from conftest import product, target
from reconciler.cli import cli
from reconciler.manifest.models import Product, Select, Target, TargetLimits
from reconciler.plan.model import Change, FieldDiff, Plan, TargetPlan
from reconciler.providers import get_provider
from reconciler.sandbox import CREDENTIALS

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
BUILT_IN = ("vtex_ads", "meta_catalog", "bloomreach", "venddor", "voucherify")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def page(name: str) -> str:
    return (DOCS / name).read_text()


def section(text: str, heading: str) -> str:
    """The text under ``heading`` (a whole heading line) up to the next heading of the
    same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n") + len(heading) + 1
    following = re.search(rf"^#{{1,{len(level)}}} ", text[start:], flags=re.M)
    return text[start:start + following.start()] if following else text[start:]


def first_cells(text: str) -> list[str]:
    """The backticked names of the first cell of every table row of ``text``."""
    names = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            names += re.findall(r"`([^`]+)`", line.split(" | ")[0])
    return names


# -- links ---------------------------------------------------------------------------------
def markdown_files() -> list[Path]:
    return [REPO / "README.md", REPO / "CHANGELOG.md", *sorted(DOCS.glob("*.md")),
            *sorted((REPO / "examples").rglob("*.md"))]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # links in code are not links
    problems = []
    for link in LINK.findall(text):
        if re.match(r"[a-z]+:", link) or link.startswith("#"):
            continue
        where = (path.parent / link.split("#")[0]).resolve()
        if not where.is_relative_to(REPO):
            problems.append(f"{link}: outside the repository")
        elif not where.exists():
            problems.append(f"{link}: no such file")
    assert problems == []


def test_the_readme_links_nothing_outside_the_repository():
    readme = (REPO / "README.md").read_text()
    assert "](../" not in readme and "SPEC.md" not in readme
    assert "(docs/README.md)" in readme


def test_every_page_of_docs_is_in_the_index():
    index = page("README.md")
    assert [p.name for p in sorted(DOCS.glob("*.md")) if p.name != "README.md" and f"]({p.name})" not in index] == []


# -- the manifest reference ---------------------------------------------------------------------
MANIFEST = page("manifest-reference.md")


def test_every_product_field_is_documented_and_no_other():
    assert sorted(first_cells(section(MANIFEST, "## Products"))) == sorted(Product.model_fields)


def test_every_target_key_is_documented_and_no_other():
    documented = first_cells(section(MANIFEST, "## Targets").split("### select")[0])
    assert sorted(documented) == sorted(set(Target.model_fields) - {"name"})  # the name is the mapping's key


def test_every_select_and_limits_key_is_documented_and_no_other():
    assert sorted(first_cells(section(MANIFEST, "### select"))) == sorted(Select.model_fields)
    assert sorted(first_cells(section(MANIFEST, "### limits"))) == sorted(TargetLimits.model_fields)


def test_the_bounds_of_requests_are_documented_with_the_engines_defaults():
    """Each ``limits`` key that bounds a destination's requests, in the manifest
    reference and in the command line page, with the default the engine uses."""
    from reconciler.apply.tuning import TARGET_BOUNDS, Tuning

    defaults = {name: f"{getattr(Tuning(), name):.15g}" for name in TARGET_BOUNDS}
    for text in (section(MANIFEST, "### limits"), section(CLI, "## Requests to destinations")):
        rows = dict(re.findall(r"^\| `(\w+)` \|(?: [^|]+ \|)? `([^`]+)` \|", text, flags=re.M))
        assert {name: rows.get(name) for name in TARGET_BOUNDS} == defaults
    assert f"each at most {Tuning().max_attempts} times" in CLI


def test_documented_defaults_are_the_models_defaults():
    rows = {m[0]: m[1] for m in re.findall(r"^\| `(\w+)` \| [^|]+ \| `([^`]+)` \|", MANIFEST, flags=re.M)}
    assert rows["max_delete_fraction"] == str(Target.model_fields["max_delete_fraction"].default)
    for name in ("availability", "condition", "status"):
        documented = re.search(rf"^\| `{name}` \|[^|]+\| `([^`]+)` \|", MANIFEST, flags=re.M)[1]
        assert documented == Product.model_fields[name].default


# -- the command line ----------------------------------------------------------------------------
CLI = page("cli.md")


def commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


def option_names(command: click.Command) -> set[str]:
    return {name for param in command.params if isinstance(param, click.Option)
            for name in (*param.opts, *param.secondary_opts)}


def documented_options(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", " ".join(first_cells(text))))


@pytest.mark.parametrize("path, command", list(commands(cli)), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_and_option_is_documented_and_no_other(path, command):
    text = section(CLI, f"### `reconciler {' '.join(path)}`")
    assert documented_options(text) == option_names(command)


def test_every_global_option_is_documented_and_no_other():
    documented = documented_options(section(CLI, "## Global options").split("### ")[0])
    assert documented == option_names(cli) | {"-h", "--help"}


def test_no_command_is_documented_that_does_not_exist():
    documented = set(re.findall(r"^### `reconciler ([a-z ]+)`$", CLI, flags=re.M))
    assert documented == {" ".join(path) for path, _ in commands(cli)}


def test_the_documented_exit_codes_are_the_ones_the_commands_give(ws):
    documented = {int(code) for code in re.findall(r"^\| `(\d+)` \|", section(CLI, "## Exit codes"), flags=re.M)}
    assert documented == {0, 1, 2, 130, 143}
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("p.yaml", {"products": [product("A")]})
    assert ws.run("validate").exit_code == 0
    assert ws.run("plan", "--detailed-exitcode").exit_code == 2
    assert CliRunner().invoke(cli, ["plan", "--no-such-option"]).exit_code == 2
    ws.write("p.yaml", {"products": [product("A", price="-1")]})
    assert ws.run("plan").exit_code == 1
    source = (REPO / "reconciler" / "cli.py").read_text()
    assert "143 if" in source and "else 130" in source  # interrupts: tested in the apply suites


def test_the_outcome_report_example_has_the_keys_apply_writes():
    from reconciler.apply.outcome import outcome
    from reconciler.apply.result import ApplyResult, Failure, TargetResult

    example = orjson.loads(re.search(r"```json\n(.*?)```", section(CLI, "### `reconciler apply`"), flags=re.S)[1])
    result = ApplyResult({"t": TargetResult("t", "bloomreach", total=1, failed=1)},
                         [Failure("t", "P1", "product", "create", "no", "P1")])
    written = outcome(result)
    assert example.keys() == written.keys()
    assert example["totals"].keys() == written["totals"].keys()
    [documented_target] = example["targets"].values()
    assert documented_target.keys() == written["targets"]["t"].keys()
    assert documented_target["failed_items"][0].keys() == written["targets"]["t"]["failed_items"][0].keys()


# -- the plan ---------------------------------------------------------------------------------
def test_the_plan_json_example_has_the_keys_a_plan_writes():
    text = page("plan-format.md")
    example = orjson.loads(re.search(r"```json\n(.*?)```", text, flags=re.S)[1])
    change = Change("update", "product", "A-1", "A-1", {"price": 1}, {"price": 2}, FieldDiff(("price",)), "99")
    plan = Plan("L", 7, {"meta-us": TargetPlan("meta-us", "meta_catalog", (change,), 998, {"provider": "…"})},
                target_serials={"meta-us": 3}, orphans={"old-shop": 120}, allow_mass_delete=True, refreshed=True)
    written = plan.to_json()
    assert example.keys() == written.keys()
    documented_target, target_json = example["targets"]["meta-us"], written["targets"]["meta-us"]
    assert documented_target.keys() == target_json.keys()
    assert documented_target["summary"].keys() == target_json["summary"].keys()
    assert documented_target["changes"][0].keys() == target_json["changes"][0].keys()
    assert documented_target["changes"][0]["fields"].keys() == target_json["changes"][0]["fields"].keys()
    # and every key is explained in the table
    explained = set(first_cells(text.split("```json", 1)[1]))
    keys = {*written, *(f"targets.NAME.{k}" for k in target_json), *target_json["changes"][0]} - {"targets"}
    assert keys <= explained


# -- the providers reference ---------------------------------------------------------------------
PROVIDERS_PAGE = page("providers-reference.md")
FULL = Product(sku="S", name="n", description="d", url="u", image_url="i", brand="b", additional_image_urls=["x"],
               categories=["A", "B"], tags=["t"], gtin="7891404130317", price=Decimal("8.99"),
               sale_price=Decimal("7.5"), currency="USD", stock=3, weight_grams=80, metadata={"k": 1},
               attributes={"ncm": "123"})
SETTINGS = {"meta_catalog": {"catalog_id": "1", "api_version": "v21.0"},
            "bloomreach": {"project_id": "p", "catalog_id": "c"}}


def provider_section(name: str) -> str:
    return section(PROVIDERS_PAGE, f"## `{name}`")


def names_after(text: str, label: str) -> list[str]:
    """The backticked names of the paragraph that starts with ``**label**``."""
    paragraph = text.split(f"**{label}**", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"`([^`]+)`", paragraph)


def test_every_built_in_provider_has_a_section():
    assert re.findall(r"^## `(\w+)`$", PROVIDERS_PAGE, flags=re.M) == list(BUILT_IN)


@pytest.mark.parametrize("name", BUILT_IN)
def test_the_declared_data_is_the_code_s(name):
    cls, text = get_provider(name), provider_section(name)
    row = lambda label: re.search(rf"^\| {label} \| (.*) \|$", text, flags=re.M)[1]  # noqa: E731
    assert row("item key").startswith(f"`{cls.key_field}`")
    assert re.findall(r"`(\w+)`", row("`auth:`").split("(")[0]) == list(cls.auth_keys)
    assert row("default base URL") == f"`{cls.default_base_url}`"
    assert re.findall(r"`(\w+)`", row("records")) == list(cls.capabilities.records)
    assert cls.capabilities.delete in row("delete").replace("`", "")
    assert row("readable").startswith("yes" if cls.capabilities.readable else "no")
    assert ("| asynchronous | yes" in text) == cls.capabilities.asynchronous
    assert row("limits").startswith(cls.limits.describe())
    for key, value in CREDENTIALS[name].items():
        assert f"`{key}: {value}`" in row("sandbox")


@pytest.mark.parametrize("name", BUILT_IN)
def test_the_settings_are_the_settings_model(name):
    cls, text = get_provider(name), provider_section(name)
    fields = cls.settings_model.model_fields
    if not fields:
        assert "| `settings:` | none |" in text
        return
    table = text.split("Settings:", 1)[1].split("Default mapping", 1)[0]
    documented = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| (required|`[^`]+`|all) \|", table, flags=re.M))
    assert sorted(documented) == sorted(fields)
    for key, info in fields.items():
        if info.is_required():
            assert documented[key] == "required", key
        elif info.default is not None:
            assert documented[key] == f"`{info.default}`", key


@pytest.mark.parametrize("name", BUILT_IN)
def test_the_default_mapping_is_the_code_s(name):
    cls, text = get_provider(name), provider_section(name)
    table = text.split("Default mapping", 1)[1].split("**Required", 1)[0]
    documented = sorted(tuple(re.findall(r"`([^`]+)`", line)[:2]) for line in table.splitlines()
                        if line.startswith("| `"))
    records = cls.records(FULL, Target(name="t", provider=name, settings=SETTINGS.get(name, {})))
    attributes = set(FULL.attributes) if name == "bloomreach" else set()  # documented as "every attribute"
    mapped = sorted((record, field) for record, payload in records.items() for field in payload
                    if field not in attributes)
    assert documented == mapped


@pytest.mark.parametrize("name", BUILT_IN)
def test_required_and_override_fields_are_the_code_s(name):
    cls, text = get_provider(name), provider_section(name)
    required = names_after(text, "Required product fields")
    assert required[:len(cls.required_fields)] == list(cls.required_fields)
    if cls.override_fields is not None:
        assert sorted(names_after(text, "Override fields")) == sorted(cls.override_fields)
    else:
        assert "any property" in text.split("**Override fields**", 1)[1]
