"""Budgets end to end against the FakeProvider: reserve before sending, settle on usage, stop cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmkit import (
    Budget,
    BudgetExceededError,
    ConfigError,
    LLMClient,
    Model,
    RequestOptions,
    ResponseCache,
    SamplingParams,
)
from llmkit.cli import main
from llmkit.testing import FakeProvider

MAX_TOKENS = 20
IN_FLIGHT = 8


def _model(fake: FakeProvider, name: str = "openai/gpt-4o-mini", **extra: object) -> Model:
    return Model(name, api_base=fake.api_base("openai"), api_key="sk-fake-budget", **extra)


def _prices(name: str = "openai/gpt-4o-mini") -> tuple[float, float]:
    import litellm

    info = litellm.get_model_info(name)
    return info["input_cost_per_token"], info["output_cost_per_token"]


@pytest.mark.slow  # 2,000 prompts through the batch engine: 20-30 s on this loaded 2-core machine
async def test_a_cost_budget_stops_a_1000_prompt_batch_and_loses_no_answer(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    prompt_price, output_price = _prices()
    # Each prompt is "question number N" (3 words; the estimate says ~4 tokens): the reservation is an upper bound.
    prompts = [f"question number {i}" for i in range(1000)]
    most_per_request = 5 * prompt_price + MAX_TOKENS * output_price
    budget = Budget(max_cost_usd=60 * most_per_request)
    cache = ResponseCache(tmp_path / "cache")
    client = LLMClient(_model(fake_provider), sampling=SamplingParams(max_tokens=MAX_TOKENS), cache=cache)

    results = await client.abatch(prompts, budget=budget, max_in_flight=IN_FLIGHT)

    answered = [c for c in results if c.ok]
    stopped = [c for c in results if not c.ok]
    assert len(results) == 1000
    assert all(isinstance(c.error, BudgetExceededError) and not c.error.retryable for c in stopped)
    assert "nothing more is sent" in str(stopped[0].error)
    # Nothing answered is lost, nothing refused was sent: the fake saw exactly the answered prompts.
    assert fake_provider.count == len(answered) > 0
    spent = sum(c.cost_usd or 0.0 for c in answered)
    assert spent <= budget.max_cost_usd
    # The budget is used, not abandoned early: at most the in-flight reservations' worth is left over.
    assert spent >= budget.max_cost_usd - (IN_FLIGHT + 1) * most_per_request
    assert client.status.cost_usd == pytest.approx(spent)

    # Every answer was cached, and cache hits cost nothing: a rerun under a spent budget still gets them all.
    fake_provider.reset()
    spent_budget = Budget(max_cost_usd=most_per_request / 2)
    again = await client.abatch(prompts, budget=spent_budget, max_in_flight=IN_FLIGHT)
    assert [c.text for c in again if c.cache_hit] == [c.text for c in answered]
    assert fake_provider.count == 0
    assert client.status.saved_usd == pytest.approx(spent)


async def test_a_token_budget_on_the_client_bounds_every_call(fake_provider: FakeProvider) -> None:
    client = LLMClient(_model(fake_provider), sampling=SamplingParams(max_tokens=10), budget=Budget(max_tokens=40))
    first = await client.acomplete("one two three")  # reserves ~3 + 10, settles to the real usage
    assert first.ok and first.usage.total_tokens < 40
    with pytest.raises(BudgetExceededError, match="budget of 40 tokens reached"):
        for n in range(10):
            await client.acomplete(f"another question {n}")
    sent = fake_provider.count
    with pytest.raises(BudgetExceededError):  # once stopped, stopped: nothing more is sent
        await client.acomplete("a short one")
    assert fake_provider.count == sent
    assert client._account is not None and client._account.spent_tokens <= 40


async def test_an_unpriced_model_under_a_cost_budget_fails_before_sending(fake_provider: FakeProvider) -> None:
    unknown = _model(fake_provider, "openai/house-model-7b")
    client = LLMClient(unknown, budget=Budget(max_cost_usd=1))
    with pytest.raises(ConfigError, match=r"no price for openai/house-model-7b.*input_cost_per_token"):
        await client.acomplete("hello there")
    assert fake_provider.count == 0

    priced = _model(fake_provider, "openai/house-model-7b", input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    answer = await LLMClient(priced, budget=Budget(max_cost_usd=1)).acomplete("hello there")
    assert answer.cost_usd == pytest.approx(answer.usage.input_tokens * 1e-6 + answer.usage.output_tokens * 2e-6)
    assert fake_provider.count == 1


async def test_a_declared_price_wins_over_litellms(fake_provider: FakeProvider) -> None:
    model = _model(fake_provider, input_cost_per_token=1.0, output_cost_per_token=0.0)
    answer = await LLMClient(model).acomplete("three word prompt")
    assert answer.cost_usd == float(answer.usage.input_tokens)


async def test_a_failed_attempt_releases_its_reservation(fake_provider: FakeProvider) -> None:
    client = LLMClient(_model(fake_provider), sampling=SamplingParams(max_tokens=10), budget=Budget(max_tokens=30))
    client.retry = client.retry.model_copy(update={"initial_backoff_s": 0.0})
    answer = await client.acomplete("[[fail_once:500]] flaky")  # two attempts, the first one refused by the fake
    assert answer.ok and answer.attempts == 2
    account = client._account
    assert account is not None
    assert account.reserved_tokens == 0 and account.spent_tokens == answer.usage.total_tokens


async def test_a_stream_settles_its_reservation(fake_provider: FakeProvider) -> None:
    client = LLMClient(_model(fake_provider), budget=Budget(max_cost_usd=1))
    items = [item async for item in client.astream("stream me please")]
    account = client._account
    assert account is not None and account.reserved_usd == 0
    assert account.spent_usd == pytest.approx(items[-1].cost_usd)


async def test_status_reports_cost_by_model_and_saved_cost(fake_provider: FakeProvider, tmp_path: Path) -> None:
    models = [
        _model(fake_provider),
        Model("anthropic/claude-haiku-4-5", api_base=fake_provider.api_base("anthropic"), api_key="sk-fake-budget"),
    ]
    client = LLMClient(models, cache=tmp_path / "cache")
    first = [await client.acomplete(p, prefer_model=m.name) for p, m in zip(["a b", "c d"], models, strict=True)]
    by_model = client.status.cost_by_model
    assert set(by_model) == {m.name for m in models}
    assert by_model["openai/gpt-4o-mini"] == pytest.approx(first[0].cost_usd)
    assert sum(by_model.values()) == pytest.approx(client.status.cost_usd)
    await client.acomplete("a b", prefer_model=models[0].name)  # a cache hit: no cost, shown as saved
    assert client.status.saved_usd == pytest.approx(first[0].cost_usd)
    assert sum(by_model.values()) == pytest.approx(client.status.cost_usd)
    assert "saved=$" in str(client.status)


def test_cli_max_cost_stops_sending_writes_every_line_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt_price, output_price = _prices()
    lines = [json.dumps({"id": i, "prompt": f"question number {i}", "sampling": {"max_tokens": 20}}) for i in range(60)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    cap = 10 * (5 * prompt_price + 20 * output_price)
    argv = ["run", "in.jsonl", "-o", "out.jsonl", "--offline", "--model", "openai/gpt-4o-mini", "--no-progress"]
    code = main([*argv, "--max-cost", repr(cap), "--max-in-flight", "4"])
    err = capsys.readouterr().err
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert code == 1
    assert sorted(r["id"] for r in out) == list(range(60))  # every line answered or refused, none missing
    answered = [r for r in out if r["error"] is None]
    refused = [r for r in out if r["error"] is not None]
    assert answered and refused and {r["error"]["type"] for r in refused} == {"BudgetExceededError"}
    assert sum(r["cost_usd"] for r in answered) <= cap
    assert f"{len(refused)} failed with BudgetExceededError" in err and "raise --max-cost" in err

    code = main([*argv, "--max-cost", "1"])  # the rerun: the answered ones come from the cache
    err = capsys.readouterr().err
    rerun = {r["id"]: r for r in (json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines())}
    assert code == 0
    assert all(rerun[r["id"]]["cache_hit"] for r in answered)
    assert f"{len(refused)} requests sent" in err


def test_budget_needs_a_limit() -> None:
    with pytest.raises(ConfigError, match="give max_cost_usd, max_tokens or both"):
        Budget()
    with pytest.raises(ConfigError, match="max_cost_usd"):
        Budget(max_cost_usd=-1)


def test_deadline_and_stream_timeouts_stay_out_of_the_cache_key() -> None:
    from llmkit import fingerprint

    plain = fingerprint("hi", model="m")
    timed = RequestOptions(deadline_s=5, first_token_timeout_s=1, stall_timeout_s=1)
    assert fingerprint("hi", model="m", options=timed) == plain


def test_the_progress_bar_says_the_budget_stopped_sending(
    fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    client = LLMClient(_model(fake_provider), sampling=SamplingParams(max_tokens=10))
    results = client.batch(["a", "b", "c"], budget=Budget(max_tokens=15), max_in_flight=1, show_progress=True)
    assert results[0].ok and isinstance(results[-1].error, BudgetExceededError)
    assert "BUDGET SPENT: sending stopped" in capsys.readouterr().err


def test_cli_deadline_fails_what_is_not_answered_in_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in.jsonl").write_text('{"id": "quick", "prompt": "hi"}\n{"id": "slow", "prompt": "[[sleep:30]] hi"}\n')
    argv = ["run", "in.jsonl", "-o", "out.jsonl", "--offline", "--no-progress", "--deadline", "2"]
    code = main(argv)
    err = capsys.readouterr().err
    out = {r["id"]: r for r in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert code == 1
    assert out["quick"]["error"] is None
    assert out["slow"]["error"]["type"] == "TimeoutError" and "deadline" in out["slow"]["error"]["message"]
    assert "1 failed with TimeoutError" in err
