"""Parameter objects: validated at construction with messages that name the field, the value and the fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmkit import ConfigError, Model, Prompt, RequestOptions, SamplingParams, merge


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"temperature": -1}, "temperature=-1"),
        ({"temperature": 2.5}, "temperature=2.5"),
        ({"top_logprobs": 3}, "needs logprobs=True"),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs=21"),
        ({"reasoning_effort": "low", "thinking_budget": 1024}, "not both"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort='extreme'"),
        ({"max_tokens": 0}, "max_tokens=0"),
        ({"temprature": 0.5}, "unknown field; allowed: temperature"),
    ],
)
def test_invalid_sampling_raises_config_error_naming_field(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        SamplingParams(**kwargs)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parameter_objects_are_frozen() -> None:
    params = SamplingParams(temperature=0.2)
    with pytest.raises(ValidationError, match="frozen"):
        params.temperature = 1.0  # type: ignore[misc]


def test_stop_string_becomes_one_sequence() -> None:
    assert SamplingParams(stop="END").stop == ("END",)


def test_model_positional_name_and_secret_never_in_repr() -> None:
    model = Model("openai/gpt-4o-mini", api_key="sk-MARKER-1234567890")
    assert model.name == "openai/gpt-4o-mini"
    assert model.provider == "openai"
    assert "MARKER" not in repr(model) and "MARKER" not in str(model)
    assert "MARKER" not in model.model_dump_json()


def test_model_weight_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="Model.weight=0"):
        Model("openai/x", weight=0)


def test_merge_precedence_call_over_client_over_model() -> None:
    model = SamplingParams(temperature=0.1, max_tokens=100, seed=1)
    client = SamplingParams(temperature=0.5, top_p=0.9)
    call = SamplingParams(temperature=0.9)
    merged = merge(model, client, call)
    assert (merged.temperature, merged.top_p, merged.max_tokens, merged.seed) == (0.9, 0.9, 100, 1)


def test_merge_not_given_differs_from_none() -> None:
    merged = merge(SamplingParams(temperature=0.3), SamplingParams(max_tokens=5))
    assert merged.temperature == 0.3  # the higher layer never mentioned temperature
    assert merged.model_fields_set == {"temperature", "max_tokens"}


def test_merge_one_reasoning_knob_replaces_the_other() -> None:
    merged = merge(SamplingParams(thinking_budget=2048), SamplingParams(reasoning_effort="low"))
    assert merged.reasoning_effort == "low" and merged.thinking_budget is None
    merged = merge(SamplingParams(reasoning_effort="high"), SamplingParams(thinking_budget=512))
    assert merged.thinking_budget == 512 and merged.reasoning_effort is None


def test_tool_choice_without_tools_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs tools"):
        RequestOptions(tool_choice="required")


def test_prompt_item_keeps_its_own_parameters() -> None:
    item = Prompt(messages=[{"role": "user", "content": "hi"}], sampling=SamplingParams(temperature=0))
    assert item.messages[0]["content"] == "hi" and item.sampling.temperature == 0


def test_a_rejected_key_value_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        Model("openai/x", api_key=12345678901234)
    assert "12345678901234" not in str(info.value) and "api_key=***" in str(info.value)


def test_prompt_items_are_checked_when_built() -> None:
    with pytest.raises(ConfigError, match="role='usr'"):
        Prompt(messages=[{"role": "usr", "content": "hi"}])
