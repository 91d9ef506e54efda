"""Hugging Face safetensors directories through transformers (PyTorch).

bf16 is used where the CPU (or GPU) supports it, fp32 otherwise. Decoding is a plain
token-by-token loop with a KV cache, so the cancel event is checked between tokens and
sampling (temperature, top-p, seed) is under our control and reproducible.
"""

from __future__ import annotations

import secrets
import collections
import threading
from collections.abc import Iterator
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes.base import AdapterRef, Delta, InferenceRuntime, Prompt, RuntimeHealth, SamplingParams


def _pick_dtype(device: str) -> torch.dtype:
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        # oneDNN reports native bf16 (AVX512-BF16 / AMX) support on capable x86 CPUs.
        if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return torch.bfloat16
    except (AttributeError, RuntimeError):
        pass
    return torch.float32


class TorchRuntime(InferenceRuntime):
    """One generation at a time per model. PEFT LoRA adapters are loaded onto the one base
    (PEFT ``load_adapter``), switched per request, and evicted least-recently-used beyond
    ``adapter_cache_bytes``."""

    name = "torch"
    max_concurrent = 1
    adapter_format = "peft-lora"

    _model: Any = None
    _peft: Any = None

    def load(self) -> None:
        if self.path is None:
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"model {self.model.name!r} has no local directory to load")
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.dtype = _pick_dtype(self.device)
        torch.set_num_threads(self.options.threads)
        try:
            self._tok = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self._model = AutoModelForCausalLM.from_pretrained(
                str(self.path), dtype=self.dtype, local_files_only=True, use_safetensors=True
            ).to(self.device)
        except Exception as e:  # OSError, ValueError, safetensors' SafetensorError, ...: a damaged model
            raise PlinthError(
                ErrorCode.RUNTIME_UNAVAILABLE, f"transformers could not load model {self.model.name!r}: {e}"
            ) from None
        self._model.eval()
        eos = self._model.generation_config.eos_token_id if self._model.generation_config else None
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self._tok.eos_token_id is not None:
            ids.add(self._tok.eos_token_id)
        self._eos_ids = ids
        cfg_ctx = getattr(self._model.config, "max_position_embeddings", None) or self.options.context_length
        self._ctx = min(int(cfg_ctx), self.options.context_length)
        self._lock = threading.Lock()
        self._adapters: collections.OrderedDict[str, int] = collections.OrderedDict()  # name -> bytes
        self._stats: collections.Counter[str] = collections.Counter()

    def context_length(self) -> int | None:
        return self._ctx if self._model is not None else None

    def prepare_chat(self, messages: list[dict[str, Any]]) -> Prompt:
        if self._tok.chat_template:
            try:
                text = self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            except Exception as e:  # jinja errors from the model's own template
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"the model's chat template failed on these messages: {e}") from None
        else:
            from plinth.runtimes.text import ChatTemplate

            text = ChatTemplate(None).render(messages)
        ids = self._tok(text, add_special_tokens=False)["input_ids"]
        return Prompt(text=text, token_ids=list(ids), n_tokens=len(ids), is_chat=True)

    def prepare_text(self, text: str) -> Prompt:
        ids = self._tok(text)["input_ids"]
        return Prompt(text=text, token_ids=list(ids), n_tokens=len(ids), is_chat=False)

    def count_tokens(self, text: str) -> int | None:
        return len(self._tok(text, add_special_tokens=False)["input_ids"]) if text else 0

    def generate(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event, adapter: AdapterRef | None = None
    ) -> Iterator[Delta]:
        assert prompt.token_ids is not None
        if not prompt.token_ids:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "the prompt is empty after tokenisation", param="prompt")
        with self._lock, torch.inference_mode():
            if adapter is None:
                if self._peft is not None:
                    with self._peft.disable_adapter():
                        yield from self._decode(self._peft, prompt.token_ids, params, cancel)
                else:
                    yield from self._decode(self._model, prompt.token_ids, params, cancel)
            else:
                name = self._ensure_adapter(adapter)
                self._peft.set_adapter(name)
                yield from self._decode(self._peft, prompt.token_ids, params, cancel)

    # -- adapters ----------------------------------------------------------------------------
    @staticmethod
    def _adapter_name(adapter: AdapterRef) -> str:
        # PEFT adapter names become module keys: no '.' or ':'.
        return "a_" + "".join(c if c.isalnum() else "_" for c in adapter.key)[-40:]

    def _ensure_adapter(self, adapter: AdapterRef) -> str:
        name = self._adapter_name(adapter)
        if name in self._adapters:
            self._adapters.move_to_end(name)
            return name
        self._evict_for(adapter.size_bytes)
        try:
            if self._peft is None:
                from peft import PeftModel

                self._peft = PeftModel.from_pretrained(self._model, str(adapter.path), adapter_name=name, is_trainable=False)
                self._peft.eval()
            else:
                self._peft.load_adapter(str(adapter.path), adapter_name=name, is_trainable=False)
        except Exception as e:  # a PEFT adapter that does not fit this base
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"could not load LoRA adapter {adapter.key!r}: {e}") from None
        self._adapters[name] = adapter.size_bytes
        self._stats["adapter_loads"] += 1
        return name

    def _evict_for(self, incoming: int) -> None:
        total = sum(self._adapters.values())
        for name in list(self._adapters):
            if total + incoming <= self.options.adapter_cache_bytes or len(self._adapters) <= 1:
                break
            self._peft.delete_adapter(name)
            total -= self._adapters.pop(name)
            self._stats["adapter_evictions"] += 1

    def loaded_adapters(self) -> list[str]:
        return list(self._adapters)

    def stats(self) -> dict[str, Any]:
        return {"loaded_adapters": self.loaded_adapters(), **dict(self._stats)}

    def _decode(self, model: Any, ids: list[int], params: SamplingParams, cancel: threading.Event) -> Iterator[Delta]:
        gen = torch.Generator(device=self.device)
        # torch.seed() would reseed the process-wide generator as a side effect: draw from the OS.
        gen.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
        input_ids = torch.tensor([ids], device=self.device)
        past = None
        out_ids: list[int] = []
        emitted = ""
        finish = "length"
        counts: dict[int, int] = {}
        for _ in range(params.max_tokens):
            if cancel.is_set():
                finish = "cancelled"
                break
            out = model(input_ids=input_ids, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1].float()
            if counts and (params.presence_penalty or params.frequency_penalty):
                idx = torch.tensor(list(counts), device=logits.device)
                freq = torch.tensor(list(counts.values()), device=logits.device, dtype=logits.dtype)
                logits[idx] -= params.presence_penalty + params.frequency_penalty * freq
            token = self._sample(logits, params, gen)
            if token in self._eos_ids:
                finish = "stop"
                break
            out_ids.append(token)
            counts[token] = counts.get(token, 0) + 1
            text = self._tok.decode(out_ids, skip_special_tokens=True)
            # Emit only text that is stable (a trailing U+FFFD may be half a character).
            if not text.endswith("\ufffd") and len(text) > len(emitted):
                yield Delta(text=text[len(emitted) :], n_tokens=1)
                emitted = text
            else:
                yield Delta(text="", n_tokens=1)
            input_ids = torch.tensor([[token]], device=self.device)
        text = self._tok.decode(out_ids, skip_special_tokens=True) if out_ids else ""
        yield Delta(text=text[len(emitted) :], n_tokens=0, finish_reason=finish)

    @staticmethod
    def _sample(logits: torch.Tensor, params: SamplingParams, gen: torch.Generator) -> int:
        if params.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < params.top_p
            sorted_p = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
            choice = torch.multinomial(sorted_p / sorted_p.sum(), 1, generator=gen)
            return int(order[choice])
        return int(torch.multinomial(probs, 1, generator=gen))

    def health(self) -> RuntimeHealth:
        if self._model is None:
            return RuntimeHealth(ok=False, detail="not loaded")
        return RuntimeHealth(ok=True, info={"device": self.device, "dtype": str(self.dtype), "n_ctx": self._ctx})

    def unload(self) -> None:
        self._peft = None
        self._model = None
        self._tok = None
