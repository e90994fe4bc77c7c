"""Structured output (``output=``) end to end: llmkit -> real LiteLLM -> FakeProvider in the three wire formats.

What crossed the wire is read from the fake: how many requests (a re-ask is one more, a cache hit none) and what each
asked for (response format, forced tool, schema in the prompt, the validation errors of a re-ask).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Literal

import pytest
from pydantic import BaseModel, Field, field_validator
from typing_extensions import TypedDict

from llmkit import (
    ConfigError,
    LLMClient,
    Model,
    OutputValidationError,
    RequestOptions,
    ResponseCache,
    SamplingParams,
    StreamDelta,
    fingerprint,
)

CHAT = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4-5", "gemini": "gemini/gemini-2.5-flash"}


class Movie(BaseModel):
    title: str
    year: int = Field(ge=1888)


class MovieDict(TypedDict):
    title: str
    year: int


@dataclasses.dataclass
class MovieRecord:
    title: str
    year: int


class Genre(enum.Enum):
    crime = "crime"
    comedy = "comedy"


MOVIE_SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "year": {"type": "integer", "minimum": 1888}},
    "required": ["title", "year"],
}
HEAT = "'Heat' came out in 1995"


def title(i: int) -> str:
    """A film title without digits (the fake fills numbers from every digit in the prompt)."""
    return "Film " + "".join(chr(ord("a") + int(d)) for d in str(i))


def model(fake, provider: str, **kwargs) -> Model:
    return Model(CHAT[provider], api_base=fake.api_base(provider), api_key="fake-key", **kwargs)


def client(fake, provider: str, **kwargs) -> LLMClient:
    supports = kwargs.pop("supports", None)
    extra = {"supports": supports} if supports is not None else {}
    return LLMClient([model(fake, provider, **extra)], **kwargs)


@pytest.fixture(params=["openai", "anthropic", "gemini"])
def provider(request) -> str:
    return request.param


def last_user_text(body: dict) -> str:
    """The last user message's text, in any of the three formats."""
    if "contents" in body:
        return " ".join(p.get("text", "") for p in body["contents"][-1]["parts"])
    content = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    return content if isinstance(content, str) else " ".join(b.get("text", "") for b in content)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (Movie, Movie(title="Heat", year=1995)),
        (list[Movie], [Movie(title="Heat", year=1995)]),
        (MovieDict, {"title": "Heat", "year": 1995}),
        (MovieRecord, MovieRecord(title="Heat", year=1995)),
        (Literal["crime", "comedy"], "crime"),
        (Genre, Genre.crime),
        (MOVIE_SCHEMA, {"title": "Heat", "year": 1995}),
    ],
    ids=["model", "list", "typeddict", "dataclass", "literal", "enum", "json-schema"],
)
async def test_each_output_type_is_parsed_in_every_wire_format(fake_provider, provider, output, expected) -> None:
    c = await client(fake_provider, provider).acomplete(HEAT, output=output)
    assert c.parsed == expected
    assert json.loads(c.text) is not None and c.attempts == 1 and fake_provider.count == 1


@pytest.mark.parametrize("mode", ["json_schema", "tool", "json"])
async def test_each_mode_in_every_wire_format(fake_provider, provider, mode) -> None:
    supports = {"json_schema": None, "tool": frozenset({"tools"}), "json": frozenset()}[mode]
    llm = client(fake_provider, provider, supports=supports)
    assert llm.plan(HEAT, options=RequestOptions(output=Movie)).output_modes == {CHAT[provider]: mode}
    c = await llm.acomplete(HEAT, output=Movie)
    assert c.parsed == Movie(title="Heat", year=1995) and json.loads(c.text) == {"title": "Heat", "year": 1995}
    assert c.tool_calls == []  # the forced tool is how the answer was asked for, not a call for the user
    body = json.dumps(fake_provider.requests[0].body)
    if mode == "json_schema":
        assert {"openai": '"strict": true', "anthropic": '"output_format"', "gemini": '"response_json_schema"'}[
            provider
        ] in body
    elif mode == "tool":
        assert '"Movie"' in body and "tool" in body.lower() and "JSON Schema:" not in body
    else:
        assert "JSON Schema:" in body and "1888" in body


async def test_a_mixed_pool_gets_each_deployments_mode(fake_provider) -> None:
    pool = LLMClient([model(fake_provider, "openai"), model(fake_provider, "anthropic", supports={"tools"})])
    modes = pool.plan(HEAT, options=RequestOptions(output=Movie)).output_modes
    assert modes == {CHAT["openai"]: "json_schema", CHAT["anthropic"]: "tool"}
    assert pool.plan(HEAT).output_modes == {}


@pytest.mark.parametrize("directive", ["bad_json_once", "bad_schema_once"])
async def test_an_invalid_answer_is_reasked_once_with_its_errors(fake_provider, provider, directive) -> None:
    llm = client(fake_provider, provider)
    c = await llm.acomplete(f"{HEAT} [[{directive}]]", output=Movie)
    assert c.parsed == Movie(title="Heat", year=1995)
    assert fake_provider.count == 2 and c.attempts == 2
    assert llm.status.reasked == 1 and llm.status.requests_sent == 2
    feedback = last_user_text(fake_provider.requests[1].body)
    assert ("Invalid JSON" if directive == "bad_json_once" else "title: Input should be a valid string") in feedback
    assert "properties" not in feedback and "1888" not in feedback  # the errors, never the schema again
    if directive == "bad_schema_once":  # both answers are 4 words ({"title": 12345, "year": 1995}): both are paid
        assert c.usage.output_tokens == 2 * len(c.text.split()) and llm.status.usage == c.usage


@pytest.mark.parametrize("supports", [frozenset({"tools"}), frozenset()], ids=["tool", "json"])
async def test_reasks_work_in_the_tool_and_json_modes(fake_provider, provider, supports) -> None:
    llm = client(fake_provider, provider, supports=supports)
    c = await llm.acomplete(f"{HEAT} [[bad_schema_once]]", output=Movie)
    assert c.parsed == Movie(title="Heat", year=1995) and fake_provider.count == 2 and c.attempts == 2


async def test_the_reask_budget_runs_out_with_a_clear_error(fake_provider, provider) -> None:
    llm = client(fake_provider, provider)
    with pytest.raises(OutputValidationError) as caught:
        await llm.acomplete(f"{HEAT} [[bad_schema]]", output=Movie, options=RequestOptions(max_output_retries=1))
    assert fake_provider.count == 2
    error = caught.value
    assert error.reason == "invalid" and not error.retryable and error.model == CHAT[provider]
    assert error.errors == [{"loc": "title", "msg": "Input should be a valid string"}]
    assert json.loads(error.text)["title"] == 12345
    fake_provider.reset()
    with pytest.raises(OutputValidationError):
        await llm.acomplete(f"{HEAT} [[bad_schema]]", output=Movie)
    assert fake_provider.count == 3  # 1 + the default max_output_retries=2


async def test_a_refusal_is_not_reasked(fake_provider, provider) -> None:
    with pytest.raises(OutputValidationError) as caught:
        await client(fake_provider, provider).acomplete(f"{HEAT} [[refuse]]", output=Movie)
    assert caught.value.reason == "refusal" and fake_provider.count == 1


async def test_a_cut_answer_is_sent_again_with_more_max_tokens(fake_provider, provider) -> None:
    c = await client(fake_provider, provider).acomplete(HEAT, output=Movie, sampling=SamplingParams(max_tokens=2))
    assert c.parsed == Movie(title="Heat", year=1995) and fake_provider.count == 2
    first, second = (r.body.get("generationConfig", r.body) for r in fake_provider.requests)
    assert [
        first.get("max_output_tokens", first.get("max_tokens")),
        second.get("max_output_tokens", second.get("max_tokens")),
    ] == [2, 4]


async def test_only_validated_answers_are_cached(fake_provider, provider, tmp_path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    llm = client(fake_provider, provider, cache=cache)
    with pytest.raises(OutputValidationError):
        await llm.acomplete(f"{HEAT} [[bad_schema]]", output=Movie)
    assert len(cache) == 0
    first = await llm.acomplete(f"{HEAT} [[bad_json_once]]", output=Movie)
    assert len(cache) == 1 and fake_provider.count == 3 + 2
    again = await llm.acomplete(f"{HEAT} [[bad_json_once]]", output=Movie)
    assert again.cache_hit and again.parsed == first.parsed and fake_provider.count == 5


async def test_the_cache_key_has_the_schema_and_a_hit_is_validated_again(fake_provider, tmp_path) -> None:
    class Longer(Movie):
        director: str | None = None

    key = fingerprint(HEAT, model="m", options=RequestOptions(output=Movie))
    assert key != fingerprint(HEAT, model="m", options=RequestOptions(output=Longer))
    assert key != fingerprint(HEAT, model="m")

    class Picky(BaseModel):  # the same JSON schema as Movie, a stricter validator
        title: str
        year: int = Field(ge=1888)

        @field_validator("title")
        @classmethod
        def _not_heat(cls, value: str) -> str:
            if value == "Heat":
                raise ValueError("not that one")
            return value

    Picky.__name__ = Picky.__qualname__ = "Movie"
    Picky.model_config["title"] = "Movie"
    Picky.model_rebuild(force=True)
    assert fingerprint(HEAT, model="m", options=RequestOptions(output=Picky)) == key
    llm = client(fake_provider, "openai", cache=tmp_path / "cache")
    await llm.acomplete(HEAT, output=Movie)
    assert fake_provider.count == 1
    with pytest.raises(OutputValidationError):
        await llm.acomplete(HEAT, output=Picky)
    assert fake_provider.count == 1 + 3  # the stored answer no longer validates: a miss, then sent and re-asked


async def test_stream_yields_deltas_then_the_validated_completion(fake_provider, provider) -> None:
    llm = client(fake_provider, provider)
    items = [item async for item in llm.astream(f"{HEAT} [[bad_json_once]]", output=Movie)]
    *deltas, final = items
    assert all(isinstance(d, StreamDelta) for d in deltas) and deltas
    assert final.parsed == Movie(title="Heat", year=1995) and final.attempts == 2
    assert fake_provider.count == 2 and llm.status.reasked == 1


async def test_a_tool_mode_stream_yields_the_answer_as_text(fake_provider, provider) -> None:
    llm = client(fake_provider, provider, supports=frozenset({"tools"}))
    *deltas, final = [item async for item in llm.astream(HEAT, output=Movie)]
    assert all(d.tool_call is None and d.text for d in deltas)
    assert json.loads("".join(d.text for d in deltas)) == json.loads(final.text) == {"title": "Heat", "year": 1995}
    assert final.parsed == Movie(title="Heat", year=1995) and final.tool_calls == []


async def test_an_invalid_stream_is_never_cached(fake_provider, provider, tmp_path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    llm = client(fake_provider, provider, cache=cache)
    with pytest.raises(OutputValidationError):
        async for _ in llm.astream(f"{HEAT} [[bad_schema]]", output=Movie):
            pass
    assert len(cache) == 0 and fake_provider.count == 3
    *_, final = [item async for item in llm.astream(f"{HEAT} [[bad_schema_once]]", output=Movie)]
    assert len(cache) == 1 and final.parsed == Movie(title="Heat", year=1995)
    *_, hit = [item async for item in llm.astream(f"{HEAT} [[bad_schema_once]]", output=Movie)]
    assert hit.cache_hit and hit.parsed == final.parsed and fake_provider.count == 5


def test_sync_stream_and_complete_take_output(fake_provider) -> None:
    llm = client(fake_provider, "openai", cache=None)
    assert llm.complete(HEAT, output=Movie).parsed == Movie(title="Heat", year=1995)
    *_, final = list(llm.stream(HEAT, output=list[Movie]))
    assert final.parsed == [Movie(title="Heat", year=1995)]


async def test_batch_returns_parsed_values_in_order_and_none_on_failure(fake_provider) -> None:
    llm = client(fake_provider, "gemini")
    prompts = [f"'{title(i)}' came out in {1900 + i}" for i in range(5)] + [f"{HEAT} [[bad_schema]]"]
    movies = await llm.abatch(prompts, output=Movie, return_completions_only=True)
    assert movies[:5] == [Movie(title=title(i), year=1900 + i) for i in range(5)] and movies[5] is None
    completions = await llm.abatch(prompts, options=RequestOptions(output=Movie, max_output_retries=0))
    assert isinstance(completions[5].error, OutputValidationError) and completions[0].parsed.year == 1900
    found = {i: c.parsed async for i, c in llm.as_completed(prompts[:3], output=list[Movie])}
    assert found == {i: [Movie(title=title(i), year=1900 + i)] for i in range(3)}


@pytest.mark.slow
async def test_a_thousand_prompt_batch_with_one_in_ten_invalid_ends_parsed_in_order(fake_provider) -> None:
    prompts = [f"'{title(i)}' in {1900 + i % 100}" + (" [[bad_json_once]]" if i % 10 == 0 else "") for i in range(1000)]
    llm = client(fake_provider, "openai")
    movies = await llm.abatch(prompts, output=Movie, return_completions_only=True)
    assert movies == [Movie(title=title(i), year=1900 + i % 100) for i in range(1000)]
    assert fake_provider.count == 1100 and llm.status.reasked == 100


def test_bad_output_arguments_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="RequestOptions.output"):
        RequestOptions(output={"type": 12})
    with pytest.raises(ConfigError, match="drop tools/response_format"):
        RequestOptions(output=Movie, response_format={"type": "json_object"})
    llm = LLMClient([Model("openai/gpt-4o-mini", supports=frozenset())])
    with pytest.raises(ConfigError, match="drop json_mode"):
        llm.complete("hi", output=Movie, sampling=SamplingParams(json_mode=True))


@pytest.mark.parametrize(
    ("provider", "sampling", "expected"),
    [
        ("gemini", SamplingParams(thinking_budget=0), {"thinkingBudget": 0}),
        ("gemini", SamplingParams(reasoning_effort="none"), {"thinkingBudget": 0}),
        ("anthropic", SamplingParams(thinking_budget=0), None),
        ("openai", SamplingParams(thinking_budget=0), None),
        ("openai", SamplingParams(reasoning_effort="none"), None),
    ],
)
async def test_thinking_off_reaches_the_wire(fake_provider, provider, sampling, expected) -> None:
    c = await client(fake_provider, provider).acomplete("Quick answer", sampling=sampling)
    assert c.thinking is None
    body = fake_provider.requests[0].body
    if provider == "gemini":
        assert {
            k: v for k, v in body["generationConfig"]["thinkingConfig"].items() if k != "includeThoughts"
        } == expected
    else:  # nothing to turn off: no thinking block for Claude, and gpt-4o-mini has no such knob to send
        assert "thinking" not in body and "reasoning_effort" not in body
