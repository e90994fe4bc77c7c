"""The README's LangChain examples, verbatim, each running offline against its own FakeProvider."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])


def test_readme_chain() -> None:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from llmkit.langchain import ChatLLMKit
    from llmkit.testing import FakeProvider

    with FakeProvider() as fake:  # offline stand-in: for a real provider, drop base_url and api_key
        llm = ChatLLMKit(
            model="anthropic/claude-sonnet-4-5",
            temperature=0,
            max_tokens=1024,
            base_url=fake.api_base("anthropic"),
            api_key="fake-key",
        )
        prompt = ChatPromptTemplate.from_messages(
            [("system", "Answer in one line."), ("human", "Translate to French: {text}")]
        )
        chain = prompt | llm | StrOutputParser()
        answer = chain.invoke({"text": "good morning"})

    assert answer == "Echo: Translate to French: good morning"  # the fake echoes the last message


def test_readme_agent_loop() -> None:
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool

    from llmkit.langchain import ChatLLMKit
    from llmkit.testing import FakeProvider

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return f"It is sunny in {city}."

    with FakeProvider() as fake:
        llm = ChatLLMKit(model="openai/gpt-4o-mini", base_url=fake.api_base("openai"), api_key="fake-key")
        llm_with_tools = llm.bind_tools([get_weather])
        messages = [HumanMessage("What is the weather in 'Paris'?")]
        while True:
            reply = llm_with_tools.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                break
            messages += [get_weather.invoke(call) for call in reply.tool_calls]

    assert reply.content == "Tool result: It is sunny in Paris."
    assert [type(m).__name__ for m in messages] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]


def test_readme_client_batch_and_structured_output() -> None:
    from pydantic import BaseModel

    from llmkit import LLMClient, Model, RateLimits
    from llmkit.langchain import ChatLLMKit
    from llmkit.testing import FakeProvider

    class Movie(BaseModel):
        title: str
        year: int

    with FakeProvider() as fake:
        client = LLMClient(  # routing, limits and the disk cache live on the client
            [
                Model("openai/gpt-4o-mini", api_base=fake.api_base("openai"), api_key="fake-key", weight=3),
                Model("gemini/gemini-2.5-flash", api_base=fake.api_base("gemini"), api_key="fake-key", weight=1),
            ],
            limits=RateLimits(requests_per_minute=600, max_concurrency=16),
            cache=".llmkit-cache",
        )
        llm = ChatLLMKit(client=client, temperature=0)
        extract = llm.with_structured_output(Movie)
        films = [("Heat", 1995), ("Alien", 1979), ("Ran", 1985)]
        movies = extract.batch([f"'{title}' came out in {year}" for title, year in films], {"max_concurrency": 8})
        again = extract.batch([f"'{title}' came out in {year}" for title, year in films])  # from the disk cache
        requests = fake.count

    assert movies == again == [Movie(title=title, year=year) for title, year in films]
    assert requests == 3
