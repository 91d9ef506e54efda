"""ChatTemplate (sandboxed Jinja from model files) and IncrementalDecoder."""

from __future__ import annotations

import pytest

from plinth.errors import ErrorCode, PlinthError
from plinth.formats import inspect_model, locate_embedded_gguf
from plinth.runtimes.text import CHATML_TEMPLATE, ChatTemplate, IncrementalDecoder

SMOL_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


@pytest.fixture(scope="module")
def smol_template() -> str:
    template = inspect_model(locate_embedded_gguf()).chat_template
    assert template, "the embedded GGUF carries its chat template"
    return template


# -- rendering ---------------------------------------------------------------------------------
def test_smollm_template_renders_chatml_with_its_default_system_prompt(smol_template: str) -> None:
    text = ChatTemplate(smol_template).render([{"role": "user", "content": "Hi there"}])
    assert text == SMOL_SYSTEM + "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"


def test_smollm_template_keeps_a_given_system_prompt_and_the_conversation(smol_template: str) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "3+3?"},
    ]
    text = ChatTemplate(smol_template).render(messages)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n4<|im_end|>\n"
        "<|im_start|>user\n3+3?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert "SmolLM" not in text


def test_add_generation_prompt_false(smol_template: str) -> None:
    text = ChatTemplate(smol_template).render([{"role": "user", "content": "x"}], add_generation_prompt=False)
    assert text.endswith("<|im_start|>user\nx<|im_end|>\n")
    assert not text.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("source", [None, ""])
def test_default_template_is_chatml(source: str | None) -> None:
    text = ChatTemplate(source).render([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    assert ChatTemplate(None).render([{"role": "user", "content": "U"}]) == ChatTemplate(CHATML_TEMPLATE).render(
        [{"role": "user", "content": "U"}]
    )


def test_bos_and_eos_tokens_are_available_to_templates() -> None:
    t = ChatTemplate(
        "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] | trim }}{{ eos_token }}{% endfor %}",
        bos_token="<s>",
        eos_token="</s>",
    )
    assert t.render([{"role": "user", "content": "  hi  "}]) == "<s>[user] hi</s>"


def test_common_hub_template_idioms_work() -> None:
    # loop variables, namespace(), string methods and tojson are used by real hub templates
    src = (
        "{% set ns = namespace(n=0) %}"
        "{% for m in messages %}{% set ns.n = ns.n + 1 %}"
        "{{ m['content'].strip() | upper }}{% if not loop.last %},{% endif %}"
        "{% endfor %}|{{ ns.n }}|{{ messages[0] | tojson }}"
    )
    out = ChatTemplate(src).render([{"role": "user", "content": " a "}, {"role": "user", "content": "b"}])
    assert out == 'A,B|2|{"content": " a ", "role": "user"}'


def test_templates_trim_blocks_like_transformers() -> None:
    src = "{% for m in messages %}\n  {% if true %}{{ m['content'] }}{% endif %}\n{% endfor %}"
    assert ChatTemplate(src).render([{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]) == "xy"


# -- the sandbox -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ messages.append({'role': 'system', 'content': 'pwned'}) }}",
        "{{ messages[0].update({'content': 'pwned'}) }}",
    ],
)
def test_the_sandbox_refuses_attribute_abuse(source: str) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(PlinthError) as info:
        ChatTemplate(source).render(messages)
    assert info.value.code == ErrorCode.INVALID_REQUEST
    assert "unsafe" in info.value.message or "not safely" in info.value.message
    assert messages == [{"role": "user", "content": "hi"}], "the caller's messages are never modified"


def test_private_attributes_never_leak_into_the_prompt() -> None:
    out = ChatTemplate("[{{ ''.__class__ }}][{{ messages.__class__ }}][{{ ''.format.__self__ }}]").render([])
    assert "class" not in out
    assert out == "[][][]"


def test_raise_exception_in_a_template_is_an_invalid_request() -> None:
    src = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation must start with a user message') }}{% endif %}ok"
    assert ChatTemplate(src).render([{"role": "user", "content": "x"}]) == "ok"
    with pytest.raises(PlinthError) as info:
        ChatTemplate(src).render([{"role": "assistant", "content": "x"}])
    assert info.value.code == ErrorCode.INVALID_REQUEST
    assert info.value.http_status == 400
    assert "Conversation must start with a user message" in info.value.message


@pytest.mark.parametrize(
    "source",
    [
        "{{ messages[0]['content'] + 1 }}",  # TypeError
        "{{ 1 // (messages | length - 1) }}",  # ZeroDivisionError
        "{{ messages[0]['content'].split('') }}",  # ValueError: empty separator
    ],
)
def test_a_python_error_inside_a_template_is_an_invalid_request_not_a_crash(source: str) -> None:
    with pytest.raises(PlinthError) as info:
        ChatTemplate(source).render([{"role": "user", "content": "x"}])
    assert info.value.code == ErrorCode.INVALID_REQUEST
    assert "chat template failed" in info.value.message


def test_a_template_that_does_not_parse_is_an_invalid_model_file() -> None:
    with pytest.raises(PlinthError) as info:
        ChatTemplate("{% for m in messages %}{{ m['content'] }}")
    assert info.value.code == ErrorCode.INVALID_MODEL_FILE
    assert "does not parse" in info.value.message


# -- incremental decoding ----------------------------------------------------------------------
TEXT = "héllo wörld — 你好, 🙂👍🏽!"


def test_incremental_decoder_never_splits_a_character_fed_byte_by_byte() -> None:
    data = TEXT.encode("utf-8")
    dec = IncrementalDecoder()
    pieces = [dec.feed(data[i : i + 1]) for i in range(len(data))]
    assert "\ufffd" not in "".join(pieces)
    for p in pieces:
        p.encode("utf-8")  # every piece is whole characters (a lone surrogate would fail)
    assert "".join(pieces) + dec.flush() == TEXT
    # a four-byte emoji appears all at once, on its last byte
    emoji = "🙂".encode()
    dec = IncrementalDecoder()
    assert [dec.feed(emoji[i : i + 1]) for i in range(4)] == ["", "", "", "🙂"]


@pytest.mark.parametrize("size", [2, 3, 5, 7])
def test_incremental_decoder_with_uneven_chunks(size: int) -> None:
    data = TEXT.encode("utf-8")
    dec = IncrementalDecoder()
    out = "".join(dec.feed(data[i : i + size]) for i in range(0, len(data), size)) + dec.flush()
    assert out == TEXT


def test_incremental_decoder_replaces_a_truncated_character_at_the_end() -> None:
    dec = IncrementalDecoder()
    assert dec.feed(b"ok" + "你".encode()[:2]) == "ok"
    assert dec.flush() == "\ufffd"


def test_incremental_decoder_replaces_invalid_bytes_instead_of_failing() -> None:
    dec = IncrementalDecoder()
    assert dec.feed(b"a\xffb") == "a\ufffdb"
