"""Secrets never reach output, plan files or the state (issue 12, "Secrets").

Unit tests of ``reconciler.credentials`` (values refused before any request, every form
redacted), then secret-bearing runs through every failure path the suite can drive:
credentials the sandbox refuses, values with control characters, faults injected by the
sandbox, a server that echoes the credential back in every encoding, ``-v``. Afterwards
stdout, stderr, the plan file and every cell of every table of the state are searched
for every form the secrets can take.
"""
from __future__ import annotations

import base64
import http.server
import io
import itertools
import json
import re
import sqlite3
import threading
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import orjson
import pytest

from conftest import Workspace, product
from support import fast_tuning, make_products, plan_products, sandbox_targets
from test_provider_common import one_write
from reconciler import credentials
from reconciler.apply import PlainReporter, apply_plan
from reconciler.errors import ConfigError
from reconciler.manifest.models import Target
from reconciler.providers import PROVIDERS, get_provider
from reconciler.sandbox import CREDENTIALS, Sandbox, SandboxConfig
from reconciler.state import State

SETTINGS = {"meta_catalog": {"catalog_id": "100200300", "api_version": "v21.0"},
            "bloomreach": {"project_id": "proj-1", "catalog_id": "cat-1"}}
AUTH = {  # provider -> {auth key: environment variable}
    "meta_catalog": {"access_token": "META_TOKEN"},
    "bloomreach": {"key_id": "BR_KEY_ID", "key_secret": "BR_KEY_SECRET"},
    "venddor": {"username": "VENDDOR_USER", "password": "VENDDOR_PASSWORD"},
    "vtex_ads": {"app_id": "VTEX_APP_ID", "api_key": "VTEX_API_KEY"},
    "voucherify": {"app_id": "VOUCHERIFY_APP_ID", "app_token": "VOUCHERIFY_APP_TOKEN"},
}
# Printable, wrong, and full of what encodings change: quotes, backslash, slash, plus,
# percent, ampersand, space, equals.
WRONG = {
    "META_TOKEN": "EAAB'wrong\"tok\\en/+%26 &=x",
    "BR_KEY_ID": "br-id/wrong+1", "BR_KEY_SECRET": "br 'secret' \\ %41 /+=",
    "VENDDOR_USER": "vend'user", "VENDDOR_PASSWORD": "p@ss w0rd/%2F\"",
    "VTEX_APP_ID": "vtex-app'id", "VTEX_API_KEY": "vtex\\key 100%",
    "VOUCHERIFY_APP_ID": "vo-app/id", "VOUCHERIFY_APP_TOKEN": "vo&token=\"x\"",
}


def forms(secret: str) -> set[str]:
    """Every way ``secret`` can be written in a message or a record."""
    raw = secret.encode()
    found = {secret, repr(secret)[1:-1], repr(raw)[2:-1], json.dumps(secret)[1:-1],
             orjson.dumps(secret).decode()[1:-1], json.dumps(secret)[1:-1].replace("/", "\\/"),
             quote(secret, safe=""), quote(secret), quote_plus(secret),
             base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return {f for f in found if len(f) >= credentials.MIN_SECRET_LENGTH}


def all_forms(secrets: list[str]) -> set[str]:
    pairs = [f"{a}:{b}" for a, b in itertools.permutations(secrets, 2)]
    found = set().union(*(forms(s) for s in secrets))
    found |= {base64.b64encode(p.encode()).decode() for p in pairs}
    return found


def leaks(text: str, secrets: list[str]) -> list[str]:
    return sorted(f for f in all_forms(secrets) if f in text)


def state_cells(path: Path) -> str:
    """Every cell of every table of a state file, as text."""
    if not path.exists():
        return ""
    conn = sqlite3.connect(path)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        cells = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                cells.extend(c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c) for c in row)
        return "\n".join(cells)
    finally:
        conn.close()


# -- resolving -----------------------------------------------------------------------------
def meta_target(token: str = "${META_TOKEN}") -> Target:
    return Target(name="meta-us", provider="meta_catalog", auth={"access_token": token}, settings={})


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "\x1b", "\x7f", "\x85", "\u202e", "\ufeff", "\u2028"])
def test_a_credential_with_a_control_or_format_character_is_refused_naming_never_the_value(bad):
    value = f"abc{bad}X-Evil: 1"
    with pytest.raises(ConfigError) as caught:
        credentials.resolve(meta_target(), ("access_token",), {"META_TOKEN": value})
    message = str(caught.value)
    assert message.startswith("target meta-us: auth.access_token (from environment variable META_TOKEN) contains ")
    assert f"U+{ord(bad):04X}" in message
    assert "abc" not in message and "Evil" not in message and bad not in message


def test_every_refused_value_is_named_at_once_literal_values_too():
    target = Target(name="shop", provider="bloomreach", settings={},
                    auth={"key_id": "literal\tid", "key_secret": "${A}-${B}"})
    with pytest.raises(ConfigError) as caught:
        credentials.resolve(target, (), {"A": "ok", "B": "crlf\r\n"})
    message = str(caught.value)
    assert "auth.key_id contains a control character (U+0009)" in message
    assert "auth.key_secret (from environment variable A, B) contains a control character (U+000D)" in message
    assert "literal" not in message and "crlf" not in message


@pytest.mark.parametrize("provider", list(PROVIDERS))
@pytest.mark.parametrize("pasted", ["\u2019", "\u00a0", "é"])
def test_a_credential_a_header_carries_as_it_is_must_be_ascii(provider, pasted):
    """Header values are ASCII (httpx raised UnicodeEncodeError: an internal error);
    a Basic header base64-encodes its values, so there any text will do."""
    keys = get_provider(provider).auth_keys
    target = Target(name="t", provider=provider, auth={key: f"${{V{i}}}" for i, key in enumerate(keys)},
                    settings={"meta_catalog": {"catalog_id": "1", "api_version": "v21.0"},
                              "bloomreach": {"project_id": "p", "catalog_id": "c"}}.get(provider, {}))
    environ = {f"V{i}": f"secret{pasted}value" for i in range(len(keys))}
    _, request = one_write(provider, {key: f"secret{pasted}value" for key in keys})

    def as_httpx() -> httpx.Request:
        return httpx.Request(request.method, "http://127.0.0.1" + request.path, headers=dict(request.headers))

    if get_provider(provider).auth_encoded:
        assert credentials.resolve(target, keys, environ) == {key: f"secret{pasted}value" for key in keys}
        as_httpx()  # the provider's own encoding makes the header ASCII
        return
    with pytest.raises(UnicodeEncodeError):  # what the refusal spares the engine
        as_httpx()
    with pytest.raises(ConfigError) as caught:
        credentials.resolve(target, keys, environ)
    message = str(caught.value)
    for i, key in enumerate(keys):
        assert (f"auth.{key} (from environment variable V{i}) contains a character that is not ASCII "
                f"(U+{ord(pasted):04X} ") in message
    assert "secret" not in message and pasted not in message


def test_printable_values_resolve_unchanged():
    target = Target(name="shop", provider="bloomreach", settings={}, auth={"key_id": "k-${A}", "key_secret": "é ü 😀"})
    assert credentials.resolve(target, (), {"A": "1"}) == {"key_id": "k-1", "key_secret": "é ü 😀"}


# -- redacting -----------------------------------------------------------------------------
SECRET = "s3cr'et\"/+ %41&é\\x"


@pytest.mark.parametrize("encode", [
    lambda s: s,
    lambda s: repr(s),                                   # Python's repr of a str
    lambda s: repr(f"Bearer {s}\n".encode()),            # httpx: Illegal header value b'Bearer ...'
    lambda s: json.dumps({"token": s}),                  # JSON, ASCII-escaped
    lambda s: orjson.dumps({"token": s}).decode(),       # JSON, UTF-8
    lambda s: json.dumps(s).replace("/", "\\/"),         # JSON with escaped slashes (PHP)
    lambda s: f"https://h/?access_token={quote(s, safe='')}",
    lambda s: f"https://h/?access_token={quote(s, safe='').lower()}",
    lambda s: f"token={quote_plus(s)}",
    lambda s: base64.b64encode(s.encode()).decode(),
    lambda s: "Basic " + base64.b64encode(f"user-name:{s}".encode()).decode(),
    lambda s: repr("Basic " + base64.b64encode(f"{s}:user-name".encode()).decode()),
], ids=["raw", "repr", "bytes-repr", "json-ascii", "json-utf8", "json-slash", "percent", "percent-lower",
        "form", "base64", "basic", "basic-reversed"])
def test_redaction_finds_every_form_of_a_secret(encode):
    secrets = credentials.secrets_of({"username": "user-name", "password": SECRET})
    text = f"the server said: {encode(SECRET)} (HTTP 400)"
    redacted = credentials.redact(text, secrets)
    assert "***" in redacted and redacted.startswith("the server said: ") and redacted.endswith(" (HTTP 400)")
    assert leaks(redacted, [SECRET]) == []
    assert "user-name" not in redacted.replace("***", "")
    assert credentials.redact("nothing secret here", secrets) == "nothing secret here"


# -- end to end ------------------------------------------------------------------------------
def write_workspace(ws: Workspace, urls: dict[str, str]) -> None:
    targets = {provider.replace("_", "-"): {
        "provider": provider, "base_url": urls[provider], "settings": SETTINGS.get(provider, {}),
        "auth": {key: "${%s}" % variable for key, variable in AUTH[provider].items()},
    } for provider in AUTH}
    ws.write("targets.yaml", {"targets": targets})
    ws.write("products.yaml", {"products": [product(f"S-{i}", gtin="7891234567895" if i == 0 else "4006381333931",
                                                    metadata={"origin": "test"}) for i in range(2)]})


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """A hostile API: any request is refused with its credentials echoed back in every
    encoding a server might use (Graph's error envelope, so it reads as a refusal)."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        token = self.headers.get("authorization", "").removeprefix("Bearer ")
        said = f"token {token} / {token!r} / {quote(token, safe='')} / {base64.b64encode(token.encode()).decode()}"
        body = json.dumps({"error": {"message": said, "code": 100, "type": "GraphMethodException"}}).encode()
        self.send_response(400)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def echo_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_secrets_never_reach_output_plan_files_or_state(ws, monkeypatch, echo_server):
    outputs: list[str] = []

    def run(*args: str) -> None:
        result = ws.run(*args)
        assert "Traceback" not in result.output or args[0] == "-v", result.output
        outputs.append(result.output)

    with Sandbox(SandboxConfig(port=0, time_scale=0.001)) as sandbox:
        write_workspace(ws, sandbox.urls)
        # 1. credentials every destination refuses
        for variable, value in WRONG.items():
            monkeypatch.setenv(variable, value)
        run("plan", "-o", str(ws.root / "plan.out"))
        run("show", str(ws.root / "plan.out"))
        for verbose in ((), ("-v",)):
            run(*verbose, "apply", str(ws.root / "plan.out"))
            run(*verbose, "drift")
            run(*verbose, "plan", "--refresh")
            run(*verbose, "status")
        # 2. values with control characters: refused before any request
        for variable, value in WRONG.items():
            monkeypatch.setenv(variable, value + "\r\nX-Evil: 1")
        before = len(sandbox.log)
        for verbose in ((), ("-v",)):
            run(*verbose, "apply", "--auto-approve")
            run(*verbose, "drift")
        assert len(sandbox.log) == before
        assert "contains a control character (U+000D)" in outputs[-1]
        # 2b. a token pasted with a curly quote: refused before any request, no internal error
        for variable, value in WRONG.items():
            monkeypatch.setenv(variable, value + ("\u2019" if variable == "META_TOKEN" else ""))
        for command in ("apply", "drift"):  # apply sends nothing; drift reads the other targets
            result = ws.run(command, *(("--auto-approve",) if command == "apply" else ()))
            assert result.exit_code == 1 and "internal error" not in result.output, result.output
            assert ("target meta-catalog: auth.access_token (from environment variable META_TOKEN) contains a "
                    "character that is not ASCII (U+2019 RIGHT SINGLE QUOTATION MARK)") in result.output
            assert not [r for r in sandbox.log[before:] if r["provider"] == "meta_catalog"]
            outputs.append(result.output)
            if command == "apply":
                assert len(sandbox.log) == before
        # 3. a server that echoes the credential back, for apply, drift and status
        write_workspace(ws, {**sandbox.urls, "meta_catalog": echo_server})
        for variable, value in WRONG.items():
            monkeypatch.setenv(variable, value)
        for verbose in ((), ("-v",)):
            run(*verbose, "apply", "--auto-approve")
            run(*verbose, "drift")
            run(*verbose, "status")
    secrets = list(WRONG.values())
    assert "failed" in "".join(outputs)  # the echoing server's refusals were shown...
    assert "***" in "".join(outputs)  # ...without what they echoed
    assert leaks("\n".join(outputs), secrets) == []
    assert leaks((ws.root / "plan.out").read_text(), secrets) == []
    assert leaks(state_cells(ws.root / "state" / "reconciler.db"), secrets) == []


def test_apply_resolves_each_targets_credentials_once(ws, monkeypatch):
    """The check before anything is sent resolves them; the apply uses those values."""
    resolved: list[str] = []
    resolve = credentials.resolve

    def counted(target, *args, **kwargs):
        resolved.append(target.name)
        return resolve(target, *args, **kwargs)

    monkeypatch.setattr(credentials, "resolve", counted)
    for provider, variables in AUTH.items():
        for key, variable in variables.items():
            monkeypatch.setenv(variable, CREDENTIALS[provider][key])
    with Sandbox(SandboxConfig(port=0, time_scale=0.001, async_delay=0.01)) as sandbox:
        write_workspace(ws, sandbox.urls)
        result = ws.run("apply", "--auto-approve")
        assert result.exit_code == 0, result.output
        assert sorted(resolved) == sorted(provider.replace("_", "-") for provider in AUTH)
        assert {e["provider"] for e in sandbox.log if e["method"] == "POST"} >= {"meta_catalog", "venddor"}


def test_faults_from_the_sandbox_leak_no_credential(tmp_path):
    """Every write fails (500, 503, 429, dropped connections) until each target stops:
    the reporter's lines, the reasons they stopped and the state hold no credential."""
    config = SandboxConfig(port=0, time_scale=0.001, fault_rate=1.0, read_fault_rate=1.0, seed=3)
    with Sandbox(config) as sandbox:
        targets = sandbox_targets(sandbox.urls)
        state = State(tmp_path / "reconciler.db")
        stream = io.StringIO()
        result = apply_plan(plan_products(state, targets, make_products(20)), targets, state,
                            reporter=PlainReporter(stream, interval=0), tuning=fast_tuning(max_attempts=3))
        state.close()
    assert set(result.errors) == set(targets)
    secrets = [value for auth in CREDENTIALS.values() for value in auth.values()]
    assert leaks(stream.getvalue(), secrets) == []
    assert leaks("\n".join(result.errors.values()), secrets) == []
    assert re.search(r"items to send again", stream.getvalue())
    assert leaks(state_cells(tmp_path / "reconciler.db"), secrets) == []
