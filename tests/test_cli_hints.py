"""Advice that fits the failure: each error class gets its own hint, and only what a rerun can fix is told to rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmkit import LLMClient, Model, SamplingParams, UnsupportedFeatureError
from llmkit._cli_run import _Failures
from llmkit.cli import main
from llmkit.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContentFilterError,
    ContextWindowExceededError,
    InvalidResponseError,
    LLMError,
    ModelNotFoundError,
    NoModelAvailableError,
    ProviderError,
    RateLimitError,
    TimeoutError,
)

RERUN = "rerun the same command to retry"
FIX_FIRST = "failed for a cause a rerun does not change"


@pytest.mark.parametrize(
    ("error", "hint", "rerun_helps"),
    [
        (RateLimitError("429"), "lower --rpm/--tpm", True),
        (TimeoutError("slow"), "raise the timeout", True),
        (ProviderError("500", status=500), "the provider or the connection failed; a rerun retries these", True),
        (InvalidResponseError("garbled"), "could not be read; a rerun retries these", True),
        (AuthenticationError("401", status=401), "check the model's key", False),
        (UnsupportedFeatureError("no logprobs"), "drop that parameter", False),
        (ModelNotFoundError("404", status=404), "check the model name", False),
        (NoModelAvailableError("none left"), "every model of the pool was taken out", False),
        (ContextWindowExceededError("too long", status=400), "add context_window_fallbacks", False),
        (ContentFilterError("refused", status=400), "refused these prompts' content", False),
        (BadRequestError("400", status=400), "refused the request as sent", False),
        (ConfigError("bad"), "fix the configuration", False),
    ],
)
def test_each_error_class_gets_its_hint_and_rerun_advice_only_if_a_rerun_helps(
    error: LLMError, hint: str, rerun_helps: bool
) -> None:
    failures = _Failures()
    failures.add("p1", error.to_dict())
    (line,) = failures.lines()
    assert line.startswith(f'1 failed with {type(error).__name__}, e.g. id "p1"') and hint in line
    advice = " ".join(failures.advice(cached=True))
    assert (RERUN in advice) is rerun_helps
    assert (FIX_FIRST in advice) is not rerun_helps


def test_the_local_model_is_not_told_to_pick_another_model() -> None:
    failures = _Failures()
    failures.add(3, UnsupportedFeatureError("openai/smollm2 does not support reasoning_effort").to_dict())
    assert "the local model (SmolLM2) cannot do this" in failures.lines(local=True)[0]
    assert "pick a model" in failures.lines(local=False)[0]


def _refusal(model: str, sampling: SamplingParams) -> str:
    client = LLMClient([Model(model, api_key="k")])
    with pytest.raises(UnsupportedFeatureError) as refused:
        client._pool(client.plan("hi", sampling))
    return str(refused.value)


def test_a_refused_reasoning_knob_is_not_told_to_use_itself() -> None:
    effort = _refusal("openai/gpt-4o-mini", SamplingParams(reasoning_effort="low"))
    assert "does not support reasoning_effort" in effort and "drop reasoning_effort" in effort
    assert "use reasoning_effort" not in effort
    budget = _refusal("openai/o3-mini", SamplingParams(thinking_budget=512))  # reasons, but by effort only
    assert "does not support thinking_budget" in budget and "use reasoning_effort instead of thinking_budget" in budget
    no_reasoning = _refusal("openai/gpt-4o-mini", SamplingParams(thinking_budget=512))
    assert "drop thinking_budget" in no_reasoning and "use reasoning_effort" not in no_reasoning


def test_a_run_with_only_non_retryable_failures_is_not_told_to_rerun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        {"id": "ok", "prompt": "fine"},
        {"id": "think", "prompt": "hmm", "sampling": {"reasoning_effort": "low"}},
        {"id": "rejected", "prompt": "[[fail:400]] no"},
    ]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    code = main(["run", "p.jsonl", "-o", "out.jsonl", "--offline", "--model", "openai/gpt-4o-mini", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "1 failed with UnsupportedFeatureError" in err and "drop reasoning_effort" in err
    assert "1 failed with BadRequestError" in err and "refused the request as sent" in err
    assert RERUN not in err and f"2 prompt(s) {FIX_FIRST}" in err
