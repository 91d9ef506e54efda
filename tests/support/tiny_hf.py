"""A real, tiny Hugging Face model directory built offline in a couple of seconds.

``make_tiny_llama(dest)`` trains a byte-level BPE tokenizer on a small built-in corpus,
wraps it as a ``PreTrainedTokenizerFast`` with a ChatML chat template, and saves a randomly
initialised (seeded) ``LlamaForCausalLM`` as safetensors next to it, plus a README.md model
card with ``license: apache-2.0``. The result loads with ``AutoTokenizer`` /
``AutoModelForCausalLM.from_pretrained(dest)`` under ``HF_HUB_OFFLINE=1`` and generates
(nonsense) tokens. It is a pure function of ``dest``: calling it again on a finished
directory returns at once, so a session-scoped fixture can build it once per run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 512
CONTEXT_LENGTH = 512

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

README = """---
license: apache-2.0
library_name: transformers
tags:
- test-fixture
---
# tiny-llama (test fixture)

A randomly initialised two-layer Llama with a 512-token byte-level BPE tokenizer. It
produces nonsense; it exists so tests can exercise real loading, tokenising and generating.
"""

CORPUS = """\
The quick brown fox jumps over the lazy dog. A small model can still learn how words are
built from bytes. Plinth serves language models on your own machines, tracks the runs that
tune them, and keeps the catalog of every model it knows. Hello, world! How are you today?
I am fine, thank you. The weather is nice and the sky is blue. We read books, write code,
and drink tea in the morning. The system answers questions about documents, and the user
asks for short and clear answers. Numbers like 1, 2, 3, 10, 42 and 2026 appear in text.
Tokenizers split text into pieces; the pieces become ids; the model predicts the next id.
A cat sat on the mat. The river runs to the sea. Good models are tested, measured and
documented. Please summarise the meeting notes and list the action items for next week.
Errors should name the bad value. Every request has a model, a list of messages and a
temperature. The assistant replies politely. Green trees, red apples, yellow lemons.
She said that the train would arrive at nine, but it came at ten. They walked home slowly.
What is the capital of France? Paris is the capital of France. Water boils at one hundred
degrees. Light travels faster than sound. The library opens at eight and closes at six.
"""


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in CORPUS.splitlines() if line.strip()]
    tokenizer.train_from_iterator(lines * 4, trainer=trainer)
    return tokenizer


def make_tiny_llama(dest: Path) -> Path:
    """Build (or reuse) the tiny model directory at ``dest`` and return ``dest``."""
    dest = Path(dest)
    if (dest / "model.safetensors").is_file() and (dest / "README.md").is_file():
        return dest  # built before: the directory only appears, complete, by the rename below

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)

    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
        model_max_length=CONTEXT_LENGTH,
    )
    hf_tokenizer.save_pretrained(tmp)
    # transformers 5 writes the template to chat_template.jinja only and names its own
    # backend class; also put the template in tokenizer_config.json and use the portable
    # class name, as hub models do, so older readers (and our inspector's fallback) see it.
    tok_config_path = tmp / "tokenizer_config.json"
    tok_config = json.loads(tok_config_path.read_text(encoding="utf-8"))
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    tok_config["chat_template"] = CHATML_TEMPLATE
    tok_config_path.write_text(json.dumps(tok_config, indent=2) + "\n", encoding="utf-8")

    vocab_size = len(hf_tokenizer)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=CONTEXT_LENGTH,
        bos_token_id=hf_tokenizer.bos_token_id,
        eos_token_id=hf_tokenizer.eos_token_id,
        pad_token_id=hf_tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = hf_tokenizer.eos_token_id
    model.generation_config.pad_token_id = hf_tokenizer.pad_token_id
    model.save_pretrained(tmp, safe_serialization=True)
    (tmp / "README.md").write_text(README, encoding="utf-8")

    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest
