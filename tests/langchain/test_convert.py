"""The pure conversions: LangChain messages to the dicts LiteLLM takes, and ``Completion``s to AIMessages."""

from __future__ import annotations

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)

from llmkit import Completion, ConfigError, StreamDelta, TokenLogprob, ToolCall, ToolCallChunk, TopLogprob, Usage
from llmkit._lc_convert import StreamConverter, normalize_tool_choice, to_ai_message, to_llmkit_messages

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

THINKING = {"type": "thinking", "thinking": "Let me see.", "signature": "sig=="}
PNG_B64 = "iVBORw0KGgo="


def test_roles_names_and_string_content_pass_through_unchanged() -> None:
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("hello", name="ann"),
        AIMessage("hi"),
        ChatMessage(role="human", content="and you?"),
    ]
    assert to_llmkit_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello", "name": "ann"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "and you?"},
    ]


def test_a_single_text_block_becomes_a_string_so_the_cache_key_matches_a_plain_prompt() -> None:
    assert to_llmkit_messages([HumanMessage([{"type": "text", "text": "hello"}])]) == [
        {"role": "user", "content": "hello"}
    ]


def test_cache_control_is_kept_on_text_blocks() -> None:
    block = {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}
    assert to_llmkit_messages([HumanMessage([block])]) == [{"role": "user", "content": [block]}]


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image", "base64": PNG_B64, "mime_type": "image/png"},
        {"type": "image", "source_type": "base64", "data": PNG_B64, "mime_type": "image/png"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ],
    ids=["v1", "v0", "anthropic", "openai"],
)
def test_images_in_every_langchain_format_become_image_url_parts(block: dict) -> None:
    (message,) = to_llmkit_messages([HumanMessage([{"type": "text", "text": "What is this?"}, block])])
    assert message["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ]


def test_image_urls_files_and_audio_use_openai_parts() -> None:
    content = [
        {"type": "image", "url": "https://example.com/cat.png"},
        {"type": "file", "base64": "JVBERg==", "mime_type": "application/pdf", "filename": "a.pdf"},
        {"type": "audio", "base64": "UklGRg==", "mime_type": "audio/wav"},
    ]
    (message,) = to_llmkit_messages([HumanMessage(content)])
    assert message["content"] == [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERg==", "filename": "a.pdf"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]


def test_tool_call_history_with_string_and_list_tool_results() -> None:
    call = {"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1", "type": "tool_call"}
    messages = [
        AIMessage("", tool_calls=[call]),
        ToolMessage("3", tool_call_id="call_1", name="add"),
        ToolMessage([{"type": "text", "text": "3"}, {"type": "text", "text": "(exact)"}], tool_call_id="call_1"),
    ]
    assert to_llmkit_messages(messages) == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "3", "name": "add"},
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": [{"type": "text", "text": "3"}, {"type": "text", "text": "(exact)"}],
        },
    ]


def test_anthropic_style_assistant_content_keeps_text_and_tool_use_once() -> None:
    message = AIMessage(
        [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "pick", "input": {"color": "green"}},
            {"type": "tool_use", "id": "toolu_2", "name": "pick", "input": {"color": "red"}},
        ],
        tool_calls=[{"name": "pick", "args": {"color": "green"}, "id": "toolu_1", "type": "tool_call"}],
    )
    (converted,) = to_llmkit_messages([message])
    assert converted["content"] == "Let me check."
    assert [(c["id"], c["function"]["arguments"]) for c in converted["tool_calls"]] == [
        ("toolu_1", '{"color": "green"}'),
        ("toolu_2", '{"color": "red"}'),
    ]


def test_invalid_tool_calls_are_sent_back_so_their_tool_results_have_a_call() -> None:
    message = AIMessage("", invalid_tool_calls=[{"name": "add", "args": "{oops", "id": "call_9", "error": "bad"}])
    (converted,) = to_llmkit_messages([message])
    assert converted["tool_calls"] == [
        {"id": "call_9", "type": "function", "function": {"name": "add", "arguments": "{oops"}}
    ]


@pytest.mark.parametrize(
    "message",
    [
        AIMessage("Hi.", additional_kwargs={"reasoning_content": "Let me see.", "thinking_blocks": [THINKING]}),
        AIMessage([THINKING, {"type": "text", "text": "Hi."}]),
        AIMessage(
            [
                {"type": "reasoning", "reasoning": "Let me see.", "extras": {"signature": "sig=="}},
                {"type": "text", "text": "Hi."},
            ]
        ),
    ],
    ids=["ours", "anthropic-native", "v1-reasoning"],
)
def test_thinking_blocks_go_back_verbatim_as_thinking_blocks(message: AIMessage) -> None:
    assert to_llmkit_messages([message]) == [{"role": "assistant", "content": "Hi.", "thinking_blocks": [THINKING]}]


def test_unsigned_reasoning_is_not_sent_back() -> None:
    v1 = AIMessage([{"type": "reasoning", "reasoning": "hmm"}, {"type": "text", "text": "Hi."}])
    assert to_llmkit_messages([v1]) == [{"role": "assistant", "content": "Hi."}]


def test_an_unsendable_message_type_is_refused_with_the_alternatives() -> None:
    with pytest.raises(ConfigError, match="RemoveMessage"):
        to_llmkit_messages([RemoveMessage(id="1")])


COMPLETION = Completion(
    text="Paris.",
    thinking="The capital of France.",
    thinking_blocks=[THINKING],
    tool_calls=[
        ToolCall(id="call_1", name="lookup", arguments={"city": "Paris"}, raw_arguments='{"city": "Paris"}'),
        ToolCall(id="call_2", name="lookup", arguments={}, raw_arguments="{broken"),
    ],
    logprobs=[TokenLogprob(token="Paris", logprob=-0.1, bytes=[80], top=[TopLogprob(token="Paris", logprob=-0.1)])],
    finish_reason="tool_calls",
    usage=Usage(input_tokens=100, output_tokens=30, reasoning_tokens=10, cache_read_tokens=60, cache_write_tokens=20),
    cost_usd=0.0012,
    model="anthropic/claude-sonnet-4-5",
    attempts=2,
)


def test_a_completion_becomes_one_whole_ai_message() -> None:
    assert to_ai_message(COMPLETION) == AIMessage(
        content="Paris.",
        additional_kwargs={"reasoning_content": "The capital of France.", "thinking_blocks": [THINKING]},
        tool_calls=[{"name": "lookup", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}],
        invalid_tool_calls=[
            {
                "name": "lookup",
                "args": "{broken",
                "id": "call_2",
                "error": "arguments are not valid JSON",
                "type": "invalid_tool_call",
            }
        ],
        usage_metadata={
            "input_tokens": 100,
            "output_tokens": 30,
            "total_tokens": 130,
            "input_token_details": {"cache_read": 60, "cache_creation": 20},
            "output_token_details": {"reasoning": 10},
        },
        response_metadata={
            "model_name": "anthropic/claude-sonnet-4-5",
            "finish_reason": "tool_calls",
            "cost_usd": 0.0012,
            "cache_hit": False,
            "attempts": 2,
            "logprobs": {
                "content": [
                    {
                        "token": "Paris",
                        "logprob": -0.1,
                        "bytes": [80],
                        "top_logprobs": [{"token": "Paris", "logprob": -0.1}],
                    }
                ]
            },
        },
    )


def test_reasoning_is_a_standard_block_and_content_stays_a_string() -> None:
    message = to_ai_message(Completion(text="Paris.", thinking="The capital of France."))
    assert message.content == "Paris."
    assert message.content_blocks == [
        {"type": "reasoning", "reasoning": "The capital of France."},
        {"type": "text", "text": "Paris."},
    ]


def test_an_ai_message_we_produced_goes_back_as_the_assistant_turn_llmkit_would_send() -> None:
    answer = Completion(
        text="Paris.", thinking="The capital.", thinking_blocks=[THINKING], tool_calls=COMPLETION.tool_calls[:1]
    )
    assert to_llmkit_messages([to_ai_message(answer)]) == [answer.to_message()]


def _sum(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


def test_streamed_chunks_add_up_to_the_invoked_message() -> None:
    converter = StreamConverter()
    deltas = [
        StreamDelta(thinking="The capital "),
        StreamDelta(thinking="of France."),
        StreamDelta(text="Par"),
        StreamDelta(text="is."),
        StreamDelta(tool_call=ToolCallChunk(index=0, id="call_1", name="lookup", arguments='{"city": ')),
        StreamDelta(tool_call=ToolCallChunk(index=0, arguments='"Paris"}')),
    ]
    final = COMPLETION.model_copy(update={"tool_calls": COMPLETION.tool_calls[:1]})
    chunks = [converter.chunk(d) for d in deltas] + [converter.last(final)]
    total = _sum(chunks)
    invoked = to_ai_message(final)
    assert [c.usage_metadata is not None for c in chunks] == [False] * len(deltas) + [True]
    assert total.chunk_position == "last"
    for field in ("content", "tool_calls", "usage_metadata", "response_metadata", "additional_kwargs"):
        assert getattr(total, field) == getattr(invoked, field), field


def test_a_replayed_cache_hit_adds_up_to_the_invoked_message_without_repeating_tool_calls() -> None:
    """LLMClient.astream replays a cached answer as thinking, text and whole tool-call deltas, then the answer."""
    converter = StreamConverter()
    final = COMPLETION.model_copy(update={"tool_calls": COMPLETION.tool_calls[:1], "cache_hit": True})
    (call,) = final.tool_calls
    deltas = [
        StreamDelta(thinking=final.thinking),
        StreamDelta(text=final.text),
        StreamDelta(tool_call=ToolCallChunk(index=0, id=call.id, name=call.name, arguments=call.raw_arguments)),
    ]
    chunks = [converter.chunk(d) for d in deltas]
    last = converter.last(final)
    total = _sum([*chunks, last])
    assert last.tool_call_chunks == []
    assert total.tool_calls == to_ai_message(final).tool_calls
    assert total.content == "Paris."


@pytest.mark.parametrize(
    ("choice", "names", "expected"),
    [
        (None, ["a"], None),
        (False, ["a"], None),
        ("auto", ["a"], "auto"),
        ("none", ["a"], "none"),
        ("any", ["a", "b"], "required"),
        ("required", ["a", "b"], "required"),
        (True, ["a"], "a"),
        (True, ["a", "b"], "required"),
        ("b", ["a", "b"], "b"),
        ({"type": "function", "function": {"name": "a"}}, ["a"], {"type": "function", "function": {"name": "a"}}),
    ],
)
def test_tool_choice_spellings(choice: object, names: list[str], expected: object) -> None:
    assert normalize_tool_choice(choice, names) == expected  # type: ignore[arg-type]


def test_a_tool_choice_that_names_no_bound_tool_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\['a', 'b'\]"):
        normalize_tool_choice("c", ["a", "b"])
