"""Structured output with the real SmolLM2-135M through llama.cpp (``llmkit[local]``).

The local model declares ``tools`` (llama.cpp's chatml-function-calling format), so ``output=`` asks for one forced
tool call, whose arguments llama.cpp constrains with a grammar built from the schema: the JSON is always well formed.
What a 135M model gets right: copying an entity and its country out of one plain sentence, and a two-label sentiment
of an obvious review. It is not reliable on anything that needs reasoning (a year computed from an age, several
records from one paragraph); the answers below are the greedy ones, checked on this build.
"""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

from llmkit import LLMClient, Model, RequestOptions, RetryPolicy, SamplingParams

pytestmark = [pytest.mark.local, pytest.mark.slow]


class City(BaseModel):
    name: str
    country: str


def test_a_small_extraction_is_validated_in_the_tool_mode(local_model: Model) -> None:
    sampling = SamplingParams(temperature=0, max_tokens=64)
    llm = LLMClient(local_model, sampling=sampling, retry=RetryPolicy(max_attempts=1))
    assert llm.plan("x", options=RequestOptions(output=City)).output_modes == {local_model.name: "tool"}
    city = llm.complete("Paris is the capital of France. Extract the city and its country.", output=City)
    assert city.parsed == City(name="Paris", country="France") and city.attempts == 1
    label = llm.complete(
        "Review: 'I loved this film, wonderful!' Is the sentiment positive or negative?",
        output=Literal["positive", "negative"],
    )
    assert label.parsed == "positive"
    assert llm.status.reasked == 0
