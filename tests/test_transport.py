"""What llmkit hands LiteLLM for each call, and what it refuses before sending anything (no network here)."""

from __future__ import annotations

import pytest

from llmkit import ConfigError, Model, RequestOptions, SamplingParams, UnsupportedFeatureError
from llmkit._transport import LiteLLMTransport, Request

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}


def kwargs_for(model: Model, sampling: SamplingParams | None = None, options: RequestOptions | None = None) -> dict:
    request = Request(
        model, [{"role": "user", "content": "hi"}], sampling or SamplingParams(), options or RequestOptions()
    )
    return LiteLLMTransport()._kwargs(request)


def test_retries_are_off_in_litellm_and_the_sdk() -> None:
    sent = kwargs_for(Model("openai/gpt-4o-mini"))
    assert sent["num_retries"] == 0 and sent["max_retries"] == 0


def test_key_and_base_are_passed_per_call() -> None:
    sent = kwargs_for(Model("openai/gpt-4o-mini", api_key="sk-k", api_base="http://127.0.0.1:9/v1"))
    assert sent["api_key"] == "sk-k" and sent["api_base"] == "http://127.0.0.1:9/v1"


def test_logprobs_on_anthropic_are_refused_naming_model_and_alternatives() -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        kwargs_for(Model("anthropic/claude-sonnet-4-5"), SamplingParams(logprobs=True))
    message = str(info.value)
    assert "anthropic/claude-sonnet-4-5" in message and "OpenAI and Gemini" in message


def test_reasoning_on_a_model_that_cannot_reason_is_refused() -> None:
    with pytest.raises(UnsupportedFeatureError, match="reasoning"):
        kwargs_for(Model("openai/gpt-4o-mini"), SamplingParams(reasoning_effort="high"))


def test_reasoning_none_is_fine_anywhere() -> None:
    kwargs_for(Model("openai/gpt-4o-mini"), SamplingParams(reasoning_effort="none"))


def test_unknown_model_gets_declared_capabilities_per_call() -> None:
    local = Model("openai/my-local-model", supports=frozenset({"reasoning", "logprobs"}))
    sent = kwargs_for(local, SamplingParams(reasoning_effort="low", logprobs=True, top_logprobs=3))
    assert sent["reasoning_effort"] == "low"
    assert set(sent["allowed_openai_params"]) >= {"reasoning_effort", "logprobs", "top_logprobs"}


def test_declared_capabilities_are_the_whole_truth() -> None:
    local = Model("openai/my-local-model", supports=frozenset({"tools"}))
    with pytest.raises(UnsupportedFeatureError, match="supports"):
        kwargs_for(local, SamplingParams(logprobs=True))


def test_thinking_budget_maps_to_thinking_param_for_anthropic_and_gemini() -> None:
    for name in ("anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"):
        sent = kwargs_for(Model(name), SamplingParams(thinking_budget=2048))
        assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}


def test_thinking_budget_on_openai_points_to_reasoning_effort() -> None:
    with pytest.raises(UnsupportedFeatureError, match="reasoning_effort"):
        kwargs_for(Model("openai/o3-mini"), SamplingParams(thinking_budget=2048))


def test_seed_is_best_effort() -> None:
    assert kwargs_for(Model("openai/gpt-4o-mini"), SamplingParams(seed=7))["seed"] == 7
    assert "seed" not in kwargs_for(Model("anthropic/claude-sonnet-4-5"), SamplingParams(seed=7))


def test_json_mode_and_tools() -> None:
    sent = kwargs_for(
        Model("openai/gpt-4o-mini"),
        SamplingParams(json_mode=True),
        RequestOptions(tools=[TOOL], tool_choice="get_weather"),
    )
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    with pytest.raises(ConfigError, match="keep one"):
        kwargs_for(
            Model("openai/gpt-4o-mini"),
            SamplingParams(json_mode=True),
            RequestOptions(response_format={"type": "json_object"}),
        )


def test_provider_options_pass_through_unchanged() -> None:
    sent = kwargs_for(Model("anthropic/claude-sonnet-4-5", provider_options={"top_k": 5}))
    assert sent["top_k"] == 5


def test_unknown_provider_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="LiteLLM model string"):
        kwargs_for(Model("no-such-provider-model-xyz"))


def test_thinking_blocks_go_back_to_claude_only() -> None:
    block = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "thinking_blocks": [block]},
        {"role": "user", "content": "more"},
    ]

    def sent(name: str) -> list[dict]:
        request = Request(Model(name), history, SamplingParams(), RequestOptions())
        return LiteLLMTransport()._kwargs(request)["messages"]

    assert sent("anthropic/claude-sonnet-4-5")[1]["thinking_blocks"] == [block]
    assert "thinking_blocks" not in sent("openai/gpt-4o-mini")[1]
    assert history[1]["thinking_blocks"] == [block]  # the caller's history is not mutated


def test_parallel_tool_calls_passed_when_given() -> None:
    options = RequestOptions(tools=[TOOL], parallel_tool_calls=False)
    assert kwargs_for(Model("openai/gpt-4o-mini"), options=options)["parallel_tool_calls"] is False
    assert "parallel_tool_calls" not in kwargs_for(Model("openai/gpt-4o-mini"), options=RequestOptions(tools=[TOOL]))
