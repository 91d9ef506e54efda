"""The OpenAI Agents SDK (``openai-agents``) against the live server: an ``Agent`` with a
``@function_tool`` on the SDK's default model (OpenAIResponsesModel, i.e. /v1/responses) and on
OpenAIChatCompletionsModel. ``tool_choice="required"`` makes the 135M model call the tool (the
SDK resets it after the call, by default, so the next turn can answer); the test asserts the
tool really ran and a final output came back. An ``output_type`` agent gets its answer parsed
into the model class. Tracing is off and any connection other than to the server fails the test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.clients import PERSON_ASK, WEATHER_ASK, Person, loopback_only
from tests.support.live_server import MODEL, LiveServer


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    from agents import set_tracing_disabled

    set_tracing_disabled(True)
    with loopback_only() as attempts:
        yield
    assert attempts == [], f"the agents SDK tried to reach the network: {attempts}"


def _run_weather_agent(live_server: LiveServer, model_kind: str, *, stream: bool = False) -> tuple[list[str], Any]:
    from agents import (
        Agent,
        ModelSettings,
        OpenAIChatCompletionsModel,
        OpenAIProvider,
        OpenAIResponsesModel,
        RunConfig,
        Runner,
        function_tool,
    )
    from openai import AsyncOpenAI

    ran: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city now.

        Args:
            city: the city's name.
        """
        ran.append(city)
        return f"It is sunny in {city}."

    async def main() -> Any:
        client = AsyncOpenAI(base_url=live_server.v1, api_key="x", max_retries=0, timeout=240)
        # the SDK's default: a model named by a string, resolved by the OpenAI provider to an
        # OpenAIResponsesModel over the given client (per run, no global client set)
        provider = OpenAIProvider(openai_client=client)
        if model_kind == "responses":
            assert isinstance(provider.get_model(MODEL), OpenAIResponsesModel)
        agent = Agent(
            name="weather",
            instructions="Answer questions about the weather with the get_weather tool.",
            model=MODEL if model_kind == "responses" else OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
            tools=[get_weather],
            model_settings=ModelSettings(tool_choice="required", max_tokens=40, temperature=0),
        )
        config = RunConfig(model_provider=provider, tracing_disabled=True)
        if stream:
            result = Runner.run_streamed(agent, WEATHER_ASK, max_turns=4, run_config=config)
            kinds = [event.type async for event in result.stream_events()]
            assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
            return result
        return await Runner.run(agent, WEATHER_ASK, max_turns=4, run_config=config)

    return ran, asyncio.run(main())


def _assert_tool_ran_and_answered(ran: list[str], result: Any) -> None:
    from agents import MessageOutputItem, ToolCallItem, ToolCallOutputItem

    assert ran and all(isinstance(city, str) and city.strip() for city in ran), ran
    kinds = [type(item) for item in result.new_items]
    assert ToolCallItem in kinds and ToolCallOutputItem in kinds and MessageOutputItem in kinds, kinds
    assert kinds.index(ToolCallItem) < kinds.index(ToolCallOutputItem) < kinds.index(MessageOutputItem)
    outputs = [item.output for item in result.new_items if isinstance(item, ToolCallOutputItem)]
    assert outputs[0] == f"It is sunny in {ran[0]}."
    assert isinstance(result.final_output, str) and result.final_output.strip()


@pytest.mark.timeout(600)
def test_default_responses_model_runs_a_function_tool(live_server: LiveServer) -> None:
    ran, result = _run_weather_agent(live_server, "responses")
    _assert_tool_ran_and_answered(ran, result)


@pytest.mark.timeout(600)
def test_chat_completions_model_runs_a_function_tool(live_server: LiveServer) -> None:
    ran, result = _run_weather_agent(live_server, "chat")
    _assert_tool_ran_and_answered(ran, result)


@pytest.mark.timeout(600)
def test_streamed_run_on_the_responses_model(live_server: LiveServer) -> None:
    ran, result = _run_weather_agent(live_server, "responses", stream=True)
    _assert_tool_ran_and_answered(ran, result)


@pytest.mark.timeout(600)
def test_structured_output_type_on_the_responses_model(live_server: LiveServer) -> None:
    """``output_type``: the SDK asks /v1/responses for a json_schema text format and parses the
    answer into the model class."""
    from agents import Agent, ModelSettings, OpenAIProvider, RunConfig, Runner
    from openai import AsyncOpenAI

    async def main() -> Any:
        client = AsyncOpenAI(base_url=live_server.v1, api_key="x", max_retries=0, timeout=240)
        agent = Agent(
            name="extract",
            instructions="Extract the person named in the text.",
            model=MODEL,
            output_type=Person,
            model_settings=ModelSettings(max_tokens=40, temperature=0),
        )
        config = RunConfig(model_provider=OpenAIProvider(openai_client=client), tracing_disabled=True)
        return await Runner.run(agent, PERSON_ASK, max_turns=2, run_config=config)

    result = asyncio.run(main())
    assert isinstance(result.final_output, Person) and result.final_output.name.strip()
