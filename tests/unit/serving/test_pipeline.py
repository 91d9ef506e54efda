"""Serving stages around generation, on the real CompletionService, engine and embedded model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plinth.config import load_settings
from plinth.domain.serving import Attachments
from plinth.errors import ErrorCode, PlinthError
from plinth.services import Services, build_services
from plinth.serving.pipeline import ChainedFilter, ChatContext, ChatStage, OutputFilter, StageAnswer
from plinth.serving.protocol import ChatCompletionRequest, CompletionRequest

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    home = tmp_path_factory.mktemp("pipeline-home")
    settings = load_settings(home=home, threads=1, context_length=1024, max_batch_size=4)
    s = build_services(settings)
    s.catalog.ensure_embedded()
    yield s
    s.close()


class Upper(OutputFilter):
    def feed(self, text: str) -> str:
        return text.upper()

    def flush(self) -> str:
        return ""


class HaltAfter(OutputFilter):
    """Holds everything back and halts once ``n`` characters have arrived."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = ""

    def feed(self, text: str) -> str:
        self.seen += text
        if len(self.seen) >= self.n:
            self.halt = "[withheld]"
        return ""

    def flush(self) -> str:
        return self.seen


class Recorder(ChatStage):
    name = "recorder"
    order = 50

    def __init__(self, answer: str | None = None, out: str | None = None, refuse_kb: bool = False) -> None:
        self.answer = answer
        self.out = out
        self.refuse_kb = refuse_kb
        self.seen: list[ChatContext] = []
        self.after_texts: list[list[str]] = []

    def check_attachments(self, attachments: Attachments) -> None:
        if self.refuse_kb and attachments.knowledge_base:
            raise PlinthError(ErrorCode.NOT_FOUND, f"knowledge base {attachments.knowledge_base!r} does not exist")

    async def before(self, ctx: ChatContext) -> StageAnswer | None:
        self.seen.append(ctx)
        ctx.extras["recorded"] = {"messages": len(ctx.messages)}
        ctx.headers["x-test-stage"] = "seen"
        if self.answer is not None:
            return StageAnswer(self.answer, finish_reason="content_filter", stage=self.name)
        return None

    def output_filter(self, ctx: ChatContext, choice: int) -> OutputFilter | None:
        if self.out == "upper":
            return Upper()
        if self.out == "halt":
            return HaltAfter(5)
        return None

    async def after(self, ctx: ChatContext, texts: list[str]) -> None:
        self.after_texts.append(texts)
        ctx.extras["answer_chars"] = [len(t) for t in texts]


def _with(services: Services, stage: ChatStage | None) -> None:
    services.stages.clear()
    if stage is not None:
        services.stages.append(stage)


def _chat(**kw: Any) -> ChatCompletionRequest:
    fields: dict[str, Any] = {"max_tokens": 8, "temperature": 0.0, **kw}
    return ChatCompletionRequest(model=MODEL, messages=[{"role": "user", "content": "Name a colour."}], **fields)


async def _collect(services: Services, req: Any) -> dict[str, Any]:
    start = services.completions.start_chat if isinstance(req, ChatCompletionRequest) else services.completions.start_completion
    job = await start(req)
    try:
        return await job.collect()
    finally:
        job.close()


async def _sse(services: Services, req: ChatCompletionRequest) -> list[dict[str, Any]]:
    job = await services.completions.start_chat(req)
    events = []
    try:
        async for raw in job.sse():
            data = raw.decode().removeprefix("data: ").strip()
            if data != "[DONE]":
                events.append(json.loads(data))
    finally:
        job.close()
    return events


def test_a_stage_answers_in_place_of_the_model_without_a_slot(services: Services) -> None:
    stage = Recorder(answer="I cannot help with that.")
    _with(services, stage)
    body = asyncio.run(_collect(services, _chat(n=2)))
    assert [c["message"]["content"] for c in body["choices"]] == ["I cannot help with that."] * 2
    assert {c["finish_reason"] for c in body["choices"]} == {"content_filter"}
    assert body["usage"]["completion_tokens"] == 0
    assert body["recorded"] == {"messages": 1}
    assert body["answer_chars"] == [24, 24]
    lm = services.models.loaded()[0]
    assert lm.admission.running == 0


def test_output_filter_and_extras_on_the_answer(services: Services) -> None:
    _with(services, None)
    plain = asyncio.run(_collect(services, _chat()))["choices"][0]["message"]["content"]
    stage = Recorder(out="upper")
    _with(services, stage)
    body = asyncio.run(_collect(services, _chat()))
    assert body["choices"][0]["message"]["content"] == plain.upper()
    assert body["answer_chars"] == [len(plain)]
    assert stage.after_texts == [[plain.upper()]]


def test_extras_ride_on_the_last_streamed_chunk(services: Services) -> None:
    _with(services, Recorder(out="upper"))
    events = asyncio.run(_sse(services, _chat(stream=True)))
    assert "answer_chars" not in events[0] and "recorded" not in events[0]
    last = events[-1]
    assert last["choices"][0]["finish_reason"] in ("stop", "length")
    assert last["recorded"] == {"messages": 1} and "answer_chars" in last
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    assert text == text.upper() and text


def test_a_filter_can_halt_generation(services: Services) -> None:
    _with(services, Recorder(out="halt"))
    body = asyncio.run(_collect(services, _chat(max_tokens=32)))
    choice = body["choices"][0]
    assert choice["message"]["content"] == "[withheld]"
    assert choice["finish_reason"] == "content_filter"
    assert body["usage"]["completion_tokens"] < 32


def test_text_completions_pass_through_stages(services: Services) -> None:
    stage = Recorder()
    _with(services, stage)
    req = CompletionRequest(model=MODEL, prompt=["Once upon a time", "The sea is"], max_tokens=4, temperature=0.0)
    body = asyncio.run(_collect(services, req))
    assert len(body["choices"]) == 2
    assert stage.seen[-1].kind == "text" and stage.seen[-1].prompts == ["Once upon a time", "The sea is"]


def test_attachments_system_prompt_is_added_and_validated(services: Services) -> None:
    _with(services, None)
    base = asyncio.run(_collect(services, _chat()))["usage"]["prompt_tokens"]
    # longer than the template's own default system prompt, which it replaces
    system = "You are the Acme Health member assistant. " * 10
    services.attachments.update(MODEL, system_prompt=system)
    try:
        with_prompt = asyncio.run(_collect(services, _chat()))["usage"]["prompt_tokens"]
        assert with_prompt > base + 40
        # a request that brings its own system message keeps it
        req = ChatCompletionRequest(
            model=MODEL,
            messages=[{"role": "system", "content": "Hi."}, {"role": "user", "content": "Name a colour."}],
            max_tokens=4,
        )
        own = asyncio.run(_collect(services, req))["usage"]["prompt_tokens"]
        assert own < with_prompt
    finally:
        services.attachments.update(MODEL, system_prompt="")
    assert services.store.get_attachments(MODEL) is None

    _with(services, Recorder(refuse_kb=True))
    with pytest.raises(PlinthError) as e:
        services.attachments.update(MODEL, knowledge_base="nope")
    assert e.value.code == ErrorCode.NOT_FOUND
    with pytest.raises(PlinthError) as e:
        services.attachments.update("no-such-model", system_prompt="x")
    assert e.value.code == ErrorCode.MODEL_NOT_FOUND


def test_chained_filters_apply_in_order() -> None:
    f = ChainedFilter([Upper(), HaltAfter(3)])
    assert f.feed("ab") == "" and f.halt is None
    f.feed("c")
    assert f.halt == "[withheld]"


def test_request_pins_a_knowledge_base(services: Services) -> None:
    stage = Recorder()
    _with(services, stage)
    asyncio.run(_collect(services, _chat(knowledge_base="acme-policies@3")))
    assert stage.seen[-1].attachments.knowledge_base == "acme-policies@3"


def test_removing_a_model_removes_its_attachments(services: Services, tmp_path: Path) -> None:
    services.store.set_attachments("ghost", Attachments(system_prompt="x"))
    services.store.set_attachments("ghost:ad", Attachments(system_prompt="y"))
    services.store.set_attachments("ghost_2", Attachments(system_prompt="z"))
    assert services.store.delete_attachments("ghost", with_adapters=True) == 2
    assert services.store.get_attachments("ghost_2") is not None
    services.store.delete_attachments("ghost_2")
