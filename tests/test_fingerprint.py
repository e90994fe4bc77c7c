"""The cache key: canonical (order, 0 vs 0.0, tuple vs list), and it covers exactly what changes the answer."""

from __future__ import annotations

from llmkit import RequestOptions, SamplingParams, fingerprint

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


def key(**overrides: object) -> str:
    prompt = overrides.pop("prompt", MESSAGES)
    args = {"model": "openai/gpt-4o-mini", "sampling": SamplingParams(temperature=0), "options": None, **overrides}
    return fingerprint(prompt, **args)  # type: ignore[arg-type]


def test_same_request_same_key_and_canonical_forms() -> None:
    base = key()
    assert key() == base
    assert key(sampling=SamplingParams(temperature=0.0)) == base
    reordered = [{"content": "be brief", "role": "system"}, {"content": "hi", "role": "user"}]
    assert key(prompt=reordered) == base
    assert key(prompt=tuple(MESSAGES)) == base


def test_a_string_prompt_is_the_same_as_one_user_message() -> None:
    assert key(prompt="hi") == key(prompt=[{"role": "user", "content": "hi"}])


def test_everything_that_changes_the_answer_changes_the_key() -> None:
    base = key()
    variants = [
        key(model="anthropic/claude-haiku-4-5"),
        key(sampling=SamplingParams(temperature=0.7)),
        key(sampling=SamplingParams(temperature=0, max_tokens=10)),
        key(prompt=[*MESSAGES[:1], {"role": "user", "content": "hi!"}]),
        key(options=RequestOptions(tools=[TOOL])),
        key(options=RequestOptions(tools=[TOOL], tool_choice="required")),
        key(options=RequestOptions(response_format={"type": "json_object"})),
        key(options=RequestOptions(sample=1)),
        key(provider_options={"top_k": 5}),
        key(prompt=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:a"}}]}]),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_key_ignores_what_does_not_change_the_answer() -> None:
    base = key(options=RequestOptions())
    assert key(options=RequestOptions(timeout_s=5, metadata={"user": "a"})) == base
    assert key(options=None) == base
