"""The provider registry, the shared helpers, and helpers the provider tests import."""
from __future__ import annotations

import email.utils
import re
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from reconciler.apply.http import Failed, classify, decoded
from reconciler.errors import ConfigError
from reconciler.providers import (
    PROVIDERS, Capabilities, Limits, Operation, Outcome, Provider, Request, get_provider,
)
from reconciler.providers import _common
from reconciler.sandbox import CREDENTIALS
from conftest import eventually, queued_work_done



# -- helpers used by the provider test modules --------------------------------------
@pytest.fixture
def client(sandbox):
    """An HTTP client over a freshly reset sandbox (each module defines ``sandbox``); the
    test fails if a limit was exceeded (tests that break one on purpose reset after)."""
    sandbox.reset()
    with httpx.Client(timeout=30) as c:
        yield c
    assert sandbox.violations == []


def op(action: str, key: str, before: dict | None = None, after: dict | None = None,
       record: str = "product", sku: str | None = None) -> Operation:
    return Operation(action=action, record=record, key=key, sku=sku or key, before=before, after=after)


def response(status: int, body: Any = None, headers: dict | None = None,
             request: httpx.Request | None = None) -> httpx.Response:
    content = b"" if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
    return httpx.Response(status, content=content, headers=headers or {},
                          request=request or httpx.Request("GET", "http://test/"))


def send(client: httpx.Client, base_url: str, request: Request) -> httpx.Response:
    """Send an encoded request exactly as the engine would."""
    return client.request(request.method, base_url + request.path, content=request.body,
                          params=dict(request.params), headers=dict(request.headers))


def through_engine(provider: Provider, request: Request, answer: httpx.Response) -> list[Outcome] | Failed:
    """What the engine makes of an answer to a write: its HTTP rules first (a
    ConfigError for refused credentials, :class:`Failed` for a 429 or a 5xx), then the
    provider's decode (:class:`Failed` for an answer that is not the documented shape)."""
    verdict = classify(answer, provider)
    return verdict if isinstance(verdict, Failed) else decoded(partial(provider.decode, request), verdict, provider)


def poll_until_done(client: httpx.Client, base_url: str, provider: Provider, job,
                    timeout: float = 10.0) -> list[Outcome]:
    return eventually(lambda: provider.decode_poll(job, send(client, base_url, provider.poll_request(job))),
                      f"job {job.handle} finishing", timeout)


def read_all(client: httpx.Client, base_url: str, provider: Provider) -> dict[tuple[str, str], dict]:
    items: dict[tuple[str, str], dict] = {}
    cursor = None
    for _ in range(10_000):
        page = provider.decode_read(send(client, base_url, provider.read_request(cursor)))
        for record, key, payload in page.items:
            assert (record, key) not in items, f"{key} read twice"
            items[(record, key)] = payload
        cursor = page.cursor
        if cursor is None:
            return items
    raise AssertionError("read did not end")


def assert_no_secret(provider: Provider, request: Request) -> None:
    """Credentials travel in headers only."""
    text = (request.path + repr(dict(request.params))).encode() + (request.body or b"")
    for secret in provider.credentials.values():
        if secret:
            assert secret.encode() not in text


# -- registry ---------------------------------------------------------------------
def test_registry_has_the_five_providers():
    assert list(PROVIDERS) == ["vtex_ads", "meta_catalog", "bloomreach", "venddor", "voucherify"]
    for name, cls in PROVIDERS.items():
        assert get_provider(name) is cls
        assert cls.name == name
        assert isinstance(cls.limits, Limits) and isinstance(cls.capabilities, Capabilities)
        assert cls.key_field and cls.auth_keys and cls.default_base_url.startswith("https://")
        assert __import__(cls.__module__, fromlist=["x"]).__doc__


def test_importing_the_registry_or_the_planner_loads_no_provider_and_no_httpx():
    code = ("import sys, reconciler.providers, reconciler.plan; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'httpx' or m.startswith('reconciler.providers.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['reconciler.providers.base']"


def test_no_provider_is_named_outside_its_folder_and_the_registry():
    import reconciler

    package = Path(reconciler.__file__).parent
    names = re.compile("|".join(PROVIDERS))
    # scaffold.py writes `reconciler init`'s example manifest, a target of one provider.
    exempt = {Path("scaffold.py")}
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative in exempt or relative.parts[0] == "providers" and len(relative.parts) > 2:
            continue
        text = path.read_text()
        if relative == Path("providers/__init__.py"):  # the registry's list itself
            text = re.sub(r"_REGISTRY: dict\[str, str\] = \{.*?\n\}", "", text, flags=re.S)
        found += [f"{relative}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1) if names.search(line)]
    assert found == []


def test_get_provider_unknown_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown provider 'nope'.*vtex_ads"):
        get_provider("nope")


def test_declared_limits_match_the_spec():
    assert PROVIDERS["vtex_ads"].limits == Limits(max_items_per_request=500, max_in_flight=3)
    assert PROVIDERS["meta_catalog"].limits == Limits(
        max_items_per_request=5000, max_requests_per_window=100, window_seconds=3600)
    assert PROVIDERS["bloomreach"].limits == Limits(
        max_items_per_request=5000, max_bytes_per_request=10_000_000,
        max_requests_per_window=5, window_seconds=10)
    assert PROVIDERS["venddor"].limits == Limits(max_items_per_request=60)
    assert PROVIDERS["voucherify"].limits == Limits(max_bytes_per_request=10_485_760)
    assert PROVIDERS["vtex_ads"].capabilities.local_deletes == ("product",)
    assert {n for n, c in PROVIDERS.items() if c.capabilities.readable} == {
        "meta_catalog", "bloomreach", "venddor", "voucherify"}
    assert {n for n, c in PROVIDERS.items() if c.capabilities.asynchronous} == {
        "meta_catalog", "voucherify"}


# -- shared helpers ------------------------------------------------------------------
def test_retry_after_seconds_and_http_date():
    assert _common.retry_after(response(429, headers={"Retry-After": "7"})) == 7.0
    assert _common.retry_after(response(429)) is None
    assert _common.retry_after(response(429, headers={"Retry-After": "soon"})) is None
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= _common.retry_after(response(503, headers={"Retry-After": date})) <= 31


def test_basic_auth_header():
    assert _common.basic_auth("sandbox-user", "sandbox-pass") == "Basic c2FuZGJveC11c2VyOnNhbmRib3gtcGFzcw=="


def test_a_count_is_an_int_of_at_least_zero_and_never_a_bool():
    assert all(_common.is_count(value) for value in (0, 1, 10**12))
    assert not any(_common.is_count(value) for value in (-1, True, False, 1.0, "1", None, [1]))


def test_diff_fields_is_type_aware():
    changed, removed = _common.diff_fields({"a": 1, "b": True, "c": [1], "d": "x"},
                                           {"a": 1.0, "b": 1, "c": [1], "e": "y"})
    assert changed == {"a": 1.0, "b": 1, "e": "y"}
    assert removed == ["d"]


# -- injected faults, every provider, over real sockets ------------------------------------
def one_write(name: str, credentials: dict[str, str] | None = None):
    """A provider of ``name`` (the sandbox's credentials by default) and one write it encodes."""
    from reconciler.providers import get_provider
    settings = {"meta_catalog": {"catalog_id": "1", "api_version": "v21.0"},
                "bloomreach": {"project_id": "p", "catalog_id": "c"}}.get(name, {})
    provider = get_provider(name)(settings, CREDENTIALS[name] if credentials is None else credentials)
    after = {
        "vtex_ads": {"product_sku": "a", "name": "n", "url": "u", "image_url": "i", "categories": ["c"]},
        "meta_catalog": {"name": "n"},
        "bloomreach": {"title": "t"},
        "venddor": {"product_code": "12345670", "product": "p", "price": "1,00", "amount": "1", "status": "A"},
        "voucherify": {"source_id": "a", "metadata": {"k": 1}},
    }[name]
    key = "12345670" if name == "venddor" else "a"
    return provider, provider.encode([op("create", key, after=after)])


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_injected_429_and_5xx_are_the_engines_to_retry(name):
    from reconciler.sandbox import Sandbox, SandboxConfig
    provider, request = one_write(name)
    seen = set()
    with Sandbox(SandboxConfig(port=0, fault_rate=1.0, seed=7, time_scale=0.001, latency=0)) as sb, \
            httpx.Client(timeout=5) as client:
        for _ in range(60):
            try:
                answer = send(client, sb.urls[name], request)
            except httpx.TransportError:
                continue  # a dropped connection: the engine's to handle
            verdict = through_engine(provider, request, answer)
            assert isinstance(verdict, Failed), (answer.status_code, verdict)
            assert verdict.rate_limited == (answer.status_code == 429)
            if answer.status_code == 429:
                assert verdict.retry_after is not None
            seen.add(answer.status_code)
            if seen >= {429, 500, 503}:
                break
    assert seen >= {429, 500, 503}


# -- the mapping's payloads are what the APIs accept, and read back unchanged ---------------
ACKNOWLEDGING = ("vtex_ads", "bloomreach")  # their APIs only acknowledge receipt (a 202, a queue)


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_mapped_products_apply_and_read_back(name):
    from reconciler.manifest.models import Product, Target
    from reconciler.mapping import item_key, records
    from reconciler.sandbox import Sandbox, SandboxConfig

    settings = {"meta_catalog": {"catalog_id": "42", "api_version": "v21.0"},
                "bloomreach": {"project_id": "p", "catalog_id": "c"}}.get(name, {})
    target = Target(name="t", provider=name, settings=settings)
    products = [Product(sku=f"SKU-{i}", name=f"Chocolate {i}", description="Dark", url=f"https://x/{i}",
                        image_url=f"https://x/{i}.jpg", brand="Acme", categories=["Food", "Sweets"],
                        tags=["t"], gtin=gtin, price="8.99", sale_price="7.5" if i else None,
                        currency="BRL", stock=5 * i, weight_grams=80, metadata={"origin": "BR", "n": i},
                        attributes={"color": "brown"} if name != "venddor" else {"ncm": "18069000"})
                for i, gtin in enumerate(["7891404130317", "7898915633481", "12345670"])]
    provider = get_provider(name)(settings, CREDENTIALS[name])
    wanted = {}
    ops = []
    for product in products:
        for record, payload in records(target, product).items():
            key = item_key(target, product)
            wanted[(record, key)] = payload
            ops.append(Operation("create", record, key, product.sku, None, payload))
    from reconciler.apply.batching import pack
    with Sandbox(SandboxConfig(port=0, async_delay=0.02, time_scale=0.001, latency=0)) as sb, \
            httpx.Client(timeout=10) as client:
        url = sb.urls[name]
        for request in pack(provider, ops):
            assert isinstance(request, Request)
            for outcome in provider.decode(request, send(client, url, request)):
                if outcome.status == "pending":
                    outcome = {o.operation.key: o for o in poll_until_done(client, url, provider, outcome.job)}[
                        outcome.operation.key]
                # an API that only acknowledges receipt gives no final result per item
                assert outcome.status == ("accepted" if name in ACKNOWLEDGING else "confirmed"), outcome
        assert sb.violations == []
        if provider.capabilities.readable:  # as far as a read returns fields (normalise_read)
            queued_work_done(sb)
            assert {at: provider.normalise_read(payload) for at, payload in read_all(client, url, provider).items()} \
                == {at: provider.normalise_read(payload) for at, payload in wanted.items()}
