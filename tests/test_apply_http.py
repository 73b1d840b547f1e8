"""The engine's HTTP rules, through ``httpx.MockTransport`` (``transport=`` of
apply_plan and settle): 401/403 stop the target before any provider decodes, 429
pauses the target and honours Retry-After, 5xx and transport errors are retried by
the one retry policy, anything else is the provider's; the same for job polls."""
from __future__ import annotations

import time

import httpx
import orjson
import pytest

from reconciler.apply import NullReporter, RetryPolicy, Tuning, apply_plan, settle
from reconciler.apply.http import Failed, classify
from reconciler.errors import ConfigError
from reconciler.manifest.models import Target
from reconciler.plan.model import Change, FieldDiff, Plan, TargetPlan
from reconciler.providers import get_provider

DONE_ONE = {"done_count": 1, "failed_count": 0, "errors": []}  # an async action's result: one product updated
FAST = Tuning(backoff_base=0.01, backoff_cap=0.05, poll_initial=0.01, poll_cap=0.05, max_attempts=4)
SECRET = "pass-secret-4321"


def venddor() -> Target:
    return Target(name="vend", provider="venddor", base_url="http://venddor.test",
                  auth={"username": "shop-user-7", "password": SECRET})


def voucherify() -> Target:
    return Target(name="vouch", provider="voucherify", base_url="http://voucherify.test",
                  auth={"app_id": "app-id-7", "app_token": SECRET})


def plan_of(target: Target, count: int, state) -> Plan:
    changes = []
    for i in range(count):
        key = f"K{i}"
        after = ({"source_id": key, "metadata": {"n": i % 2}} if target.provider == "voucherify" else
                 {"product_code": key, "product": f"P{i}", "price": "1,00", "amount": "1", "status": "A"})
        changes.append(Change("create", "product", key, key, None, after, FieldDiff(added=tuple(after))))
    return Plan(state.lineage, state.serial, {target.name: TargetPlan(target.name, target.provider, tuple(changes), 0)})


def apply_with(handler, target: Target, state, count: int = 3, **kwargs):
    kwargs.setdefault("tuning", FAST)
    return apply_plan(plan_of(target, count, state), {target.name: target}, state, reporter=NullReporter(),
                      transport=httpx.MockTransport(handler), **kwargs)


def created(request: httpx.Request) -> httpx.Response:
    body = orjson.loads(request.content)
    return httpx.Response(201, json={"product_ids": [100 + i for i in range(len(body))]})


@pytest.fixture
def decoded(monkeypatch):
    """The HTTP statuses the providers' decode and decode_poll were given."""
    seen: list[int] = []
    for provider, name in (("venddor", "decode"), ("voucherify", "decode"), ("voucherify", "decode_poll")):
        cls = get_provider(provider)
        original = getattr(cls, name)

        def spy(self, subject, response, original=original):
            seen.append(response.status_code)
            return original(self, subject, response)
        monkeypatch.setattr(cls, name, spy)
    return seen


def test_the_one_status_classification():
    provider = get_provider("voucherify")({}, {"app_id": "app-id-7", "app_token": SECRET})
    for status in (401, 403):
        with pytest.raises(ConfigError) as info:
            classify(httpx.Response(status, text=SECRET), provider)
        assert str(info.value) == (f"voucherify refused the target's credentials (HTTP {status}); "
                                   "check the target's auth (app_id, app_token)")
    assert classify(httpx.Response(429, headers={"Retry-After": "6"}), provider) == Failed(
        "voucherify: rate limited (HTTP 429)", 6.0, rate_limited=True)
    for status in (500, 502, 503):
        assert classify(httpx.Response(status), provider) == Failed(f"voucherify: server error (HTTP {status})")
    for status in (200, 202, 400, 404, 409, 413, 422):
        answer = httpx.Response(status)
        assert classify(answer, provider) is answer  # the provider's to decode


def test_apply_through_a_mock_transport_records_what_was_confirmed(state):
    sent = []

    def handler(request):
        sent.append(request)
        return created(request)

    result = apply_with(handler, venddor(), state)
    assert result.ok and result.targets["vend"].confirmed == 3
    assert [r.url.path for r in sent] == ["/api/products/"]
    assert {item.key: item.remote_id for item in state.items("vend")} == {"K0": "100", "K1": "101", "K2": "102"}


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_stop_the_target_before_the_provider_decodes(state, decoded, status):
    sent = []

    def handler(request):
        sent.append(request)
        return httpx.Response(status, json={"message": f"bad password {SECRET}"})

    result = apply_with(handler, venddor(), state, count=200)  # four requests' worth
    error = result.targets["vend"].error
    assert "venddor refused the target's credentials" in error and "username, password" in error
    assert SECRET not in error
    assert len(sent) == 1 and decoded == []  # the first request goes alone
    assert list(state.items("vend")) == [] and result.targets["vend"].not_sent == 200


def test_429_pauses_the_target_and_honours_retry_after(state, decoded):
    sent: list[float] = []

    def handler(request):
        sent.append(time.monotonic())
        if len(sent) == 1:
            return httpx.Response(429, headers={"Retry-After": "0.2"}, json={"message": "slow down"})
        return created(request)

    result = apply_with(handler, venddor(), state, count=120)  # two requests: the first goes alone
    assert result.ok and result.targets["vend"].retried == 60
    assert sent[1] - sent[0] >= 0.2
    assert result.targets["vend"].wait_seconds > 0  # the other request waited too: the target paused
    assert decoded == [201, 201]


def test_5xx_and_transport_errors_are_retried_within_the_attempts(state, decoded):
    answers = iter([httpx.Response(503), "drop", httpx.Response(502)])

    def handler(request):
        answer = next(answers, None)
        if answer == "drop":
            raise httpx.ConnectError("connection reset", request=request)
        return answer or created(request)

    result = apply_with(handler, venddor(), state)
    assert result.ok and result.targets["vend"].requests == 4
    assert decoded == [201]



def test_a_target_whose_every_attempt_fails_stops_with_one_message(state):
    always = lambda request: httpx.Response(500)  # noqa: E731
    result = apply_with(always, venddor(), state, count=2)
    vend = result.targets["vend"]
    assert result.failures == [] and vend.not_sent == 2 and vend.requests == FAST.max_attempts
    assert vend.error.startswith("venddor kept failing: 4 attempts in a row in ")
    assert vend.error.endswith("got no usable answer (last: venddor: server error (HTTP 500)); stopped "
                               "(limits.retry_budget_seconds is 300 s); run again later")
    assert list(state.items("vend")) == [] and state.failures("vend") == []


def test_an_item_that_alone_keeps_failing_fails_and_the_others_are_applied(state):
    """Other requests answered between its attempts: the item is at fault, not the
    destination. Its 503s ask for a pause that the other items' answers come within."""
    def handler(request):
        if b'"K0"' in request.content:
            return httpx.Response(503, headers={"Retry-After": "0.05"})
        return created(request)

    alone = Target(**{**venddor().model_dump(), "limits": {"max_items_per_request": 1}})
    result = apply_with(handler, alone, state, count=8, tuning=FAST)
    assert result.targets["vend"].error is None and result.targets["vend"].confirmed == 7
    assert [(f.sku, f.reason) for f in result.failures] == [
        ("K0", "venddor: server error (HTTP 503) (gave up after 4 attempts)")]


def test_other_statuses_go_to_the_provider(state, decoded):
    result = apply_with(lambda request: httpx.Response(400, json={"message": "Bad Request"}), venddor(), state,
                        count=1)
    assert result.targets["vend"].failed == 1 and decoded == [400]


def test_job_polls_follow_the_same_rules(state, decoded):
    polls = iter([httpx.Response(503), httpx.Response(429, headers={"Retry-After": "0.1"}),
                  httpx.Response(200, json={"id": "aa_1", "status": "DONE", "result": DONE_ONE})])

    def handler(request):
        if request.method == "POST":
            return httpx.Response(202, json={"async_action_id": "aa_1"})
        return next(polls)

    result = apply_with(handler, voucherify(), state, count=1)
    assert result.ok and result.targets["vouch"].confirmed == 1 and result.targets["vouch"].polls == 3
    assert decoded == [202, 200]  # the 503 and the 429 were the engine's


def test_a_job_whose_status_cannot_be_read_is_left_pending_after_the_attempts(state):
    def handler(request):
        if request.method == "POST":
            return httpx.Response(202, json={"async_action_id": "aa_1"})
        raise httpx.ReadTimeout("no status", request=request)

    result = apply_plan(plan_of(voucherify(), 1, state), {"vouch": voucherify()}, state, reporter=NullReporter(),
                        tuning=FAST, transport=httpx.MockTransport(handler))
    vouch = result.targets["vouch"]
    assert vouch.pending == 1 and vouch.polls == FAST.max_attempts
    # every status call failed: the destination is failing, and the target says so once
    assert vouch.error.startswith("voucherify kept failing: 4 attempts in a row")
    assert "(last: voucherify: no answer (ReadTimeout: no status))" in vouch.error
    assert len(state.pending_jobs("vouch")) == 1

    done = lambda request: httpx.Response(200, json={"status": "DONE", "result": DONE_ONE})  # noqa: E731
    settled = settle(state, {"vouch": voucherify()}, reporter=NullReporter(), tuning=FAST,
                     transport=httpx.MockTransport(done))
    assert settled.targets["vouch"].confirmed == 1 and state.pending_jobs() == []


def test_a_job_whose_status_alone_cannot_be_read_is_left_pending_and_the_others_settle(state):
    """Another job's status calls are answered between its attempts (its 503s ask for
    a pause longer than the other's poll interval): that job is left pending with a
    message, the target goes on."""
    def handler(request):
        if request.method == "POST":
            job = "aa_0" if b'"n":0' in request.content else "aa_1"
            return httpx.Response(202, json={"async_action_id": job})
        if request.url.path.endswith("aa_0"):
            return httpx.Response(503, headers={"Retry-After": "0.1"})
        running = "IN_PROGRESS" if len(messages) == 0 else "DONE"  # until the other job is left pending
        return httpx.Response(200, json={"status": running, "result": DONE_ONE})

    messages = []

    class Messages(NullReporter):
        def message(self, target, text):
            messages.append(text)

    result = apply_plan(plan_of(voucherify(), 2, state), {"vouch": voucherify()}, state, reporter=Messages(),
                        tuning=FAST, transport=httpx.MockTransport(handler))
    vouch = result.targets["vouch"]
    assert vouch.error is None and (vouch.confirmed, vouch.pending) == (1, 1)
    assert messages == ["the status of job aa_0 (1 items) could not be read in 4 attempts (voucherify: server "
                        "error (HTTP 503)); left pending (`reconciler status` settles it later)"]
    assert [job.job.handle for job in state.pending_jobs("vouch")] == ["aa_0"]


def test_refused_credentials_on_a_poll_stop_the_settle(state):
    accept = lambda request: httpx.Response(202, json={"async_action_id": "aa_1"})  # noqa: E731
    apply_with(accept, voucherify(), state, count=1, wait=False)
    refused = lambda request: httpx.Response(401, json={"message": "Unauthorized"})  # noqa: E731
    settled = settle(state, {"vouch": voucherify()}, reporter=NullReporter(), tuning=FAST,
                     transport=httpx.MockTransport(refused))
    assert "voucherify refused the target's credentials" in settled.targets["vouch"].error
    assert len(state.pending_jobs("vouch")) == 1


def test_the_retry_policy():
    import random

    policy = RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_cap=5.0)
    rng = random.Random(1)
    assert not policy.exhausted(2) and policy.exhausted(3)
    assert all(0 <= policy.delay(1, None, rng) <= 1.0 for _ in range(50))
    assert all(0 <= policy.delay(10, None, rng) <= 5.0 for _ in range(50))  # capped
    assert policy.delay(1, 7.5, rng) == 7.5  # never sooner than Retry-After
    assert FAST.retry == RetryPolicy(4, 0.01, 0.05)


def test_the_retry_budget_counts_a_failure_and_says_the_next_delay_or_none():
    import random

    from reconciler.apply.retry import RetryBudget
    from reconciler.errors import DestinationError

    policy = RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_cap=5.0)
    rng = random.Random(1)
    budget = RetryBudget(policy, "venddor")
    assert 0 <= budget.next_delay(1, "HTTP 503", None, rng) <= 1.0
    assert budget.next_delay(2, "HTTP 503", 4.0, rng) == 4.0  # never sooner than Retry-After
    budget.answered()  # another request of the target got an answer: this one alone is out of attempts
    assert budget.next_delay(3, "HTTP 503", None, rng) is None
    assert budget.in_row == 1 and budget.last == "HTTP 503"

    budget = RetryBudget(policy, "venddor")  # every attempt of the target fails: it stops
    budget.next_delay(1, "HTTP 500", None, rng)
    budget.next_delay(2, "HTTP 500", None, rng)
    with pytest.raises(DestinationError, match=r"venddor kept failing: 3 attempts in a row .*\(last: HTTP 500\)"):
        budget.next_delay(3, "HTTP 500", None, rng)
    with pytest.raises(DestinationError, match="venddor asks to wait 301 s; run again later"):
        RetryBudget(policy, "venddor").next_delay(1, "HTTP 429", 300.5, rng)
