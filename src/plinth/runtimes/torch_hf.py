"""Hugging Face safetensors directories (and GGUF files) through PyTorch.

Two paths, chosen when the model loads:

- **batching** (llama-family architectures, see :mod:`plinth.runtimes.torch_llama`): the
  :class:`~plinth.runtimes.torch_engine.TorchBatchEngine` serves up to ``max_batch_size``
  requests at once with continuous batching and many LoRA adapters in one batch;
- **generic** (any other causal LM transformers can load): one request at a time through
  transformers' own modules, with PEFT adapters switched per request.

A GGUF file is dequantised once into a safetensors directory (:mod:`plinth.runtimes.
torch_gguf`). bf16 is used where the CPU (or GPU) computes it natively, fp32 otherwise.
Decoding is token by token under plinth's control, so the cancel event is checked between
tokens and sampling (temperature, top-p, seed) is reproducible.
"""

from __future__ import annotations

import collections
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes import torch_llama as tl
from plinth.runtimes.base import AdapterRef, Delta, InferenceRuntime, OutputConstraint, Prompt, RuntimeHealth, SamplingParams
from plinth.runtimes.batching import EngineRuntimeMixin
from plinth.runtimes.torch_engine import TorchBatchEngine, apply_logit_bias, mask_logits, new_matcher, token_logprob

_SCHEMA_PARAM = "response_format.json_schema.schema"


def _on_short_thread(fn: Any) -> Any:
    """Run ``fn`` on a thread that ends when it returns (its OpenMP worker team ends too)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # re-raised on the caller's thread
            out["error"] = e

    t = threading.Thread(target=run, name="plinth-torch-prepare")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


class TorchRuntime(EngineRuntimeMixin, InferenceRuntime):
    """The batching engine for llama-family models; otherwise one generation at a time, with
    PEFT LoRA adapters loaded onto the one base (PEFT ``load_adapter``), switched per request,
    and evicted least-recently-used beyond ``adapter_cache_bytes``."""

    name = "torch"
    adapter_format = "peft-lora"

    _model: Any = None
    _peft: Any = None
    _engine: TorchBatchEngine | None = None
    _tok: Any = None

    @property
    def max_concurrent(self) -> int:  # type: ignore[override]
        return self.options.max_batch_size if self._engine is not None else 1

    def load(self) -> None:
        if self.path is None:
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"model {self.model.name!r} has no local directory to load")
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.dtype = tl.pick_dtype(self.device) if self.options.torch_dtype == "auto" else getattr(torch, self.options.torch_dtype)
        model_dir = self.path
        if (self.path.is_file() and self.path.suffix.lower() == ".gguf") or self.model.format.value == "gguf":
            from plinth.runtimes.torch_gguf import dequantised_dir

            cache = (self.options.cache_dir or self.path.parent) / "torch"
            # on a thread of its own: the OpenMP team its tensor work creates ends with it
            model_dir = _on_short_thread(
                lambda: dequantised_dir(self.path, cache, digest=self.model.digest, dtype_name=str(self.dtype).replace("torch.", ""))
            )
        self.model_dir = model_dir
        try:
            self._tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        except Exception as e:  # OSError, ValueError...: a damaged model
            raise PlinthError(
                ErrorCode.RUNTIME_UNAVAILABLE, f"transformers could not load the tokenizer of {self.model.name!r}: {e}"
            ) from None
        cfg = tl.read_config(model_dir)
        spec = tl.spec_from_config(cfg) if self.options.torch_batching else None
        cfg_ctx = int(cfg.get("max_position_embeddings") or self.options.context_length)
        self._ctx = min(cfg_ctx, self.options.context_length)
        self._eos_ids = self._eos_from(cfg, model_dir)
        self._lock = threading.Lock()
        self._constraints_lock = threading.Lock()
        self._matchers: collections.OrderedDict[str, Any] = collections.OrderedDict()  # compiled constraints, LRU
        self._ll_tokenizer: Any = None
        self._adapters: collections.OrderedDict[str, int] = collections.OrderedDict()  # name -> bytes
        self._stats: collections.Counter[str] = collections.Counter()
        if spec is not None:
            name, dtype, device, positions = self.model.name, self.dtype, self.device, self._ctx + 1

            def load() -> tl.LlamaWeights:
                try:
                    return tl.load_weights(model_dir, spec, dtype, device, max_positions=positions)
                except PlinthError as e:
                    raise PlinthError(e.code, f"model {name!r} could not be loaded: {e.message}") from None

            self._engine = TorchBatchEngine(
                load,
                self._tok.backend_tokenizer,
                self._eos_ids,
                n_ctx_per_seq=self._ctx,
                max_batch=self.options.max_batch_size,
                prefill_chunk=self.options.prefill_chunk_tokens,
                adapter_budget_bytes=self.options.adapter_cache_bytes,
                threads=self.options.threads,
                batch_invariant=self.options.torch_batch_invariant,
                name=self.model.name,
            )
            return
        torch.set_num_threads(self.options.threads)
        try:
            model: Any = AutoModelForCausalLM.from_pretrained(  # its .to() is typed too narrowly for a device string
                str(model_dir), dtype=self.dtype, local_files_only=True, use_safetensors=True
            )
            self._model = model.to(self.device)
        except Exception as e:  # OSError, ValueError, safetensors' SafetensorError, ...: a damaged model
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"transformers could not load model {self.model.name!r}: {e}") from None
        self._model.eval()

    def _eos_from(self, cfg: dict[str, Any], model_dir: Any) -> set[int]:
        ids: set[int] = set()
        sources = [cfg.get("eos_token_id")]
        try:
            import json

            sources.append(json.loads((model_dir / "generation_config.json").read_text(encoding="utf-8")).get("eos_token_id"))
        except (OSError, ValueError):
            pass
        for eos in sources:
            ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self._tok.eos_token_id is not None:
            ids.add(self._tok.eos_token_id)
        return {int(i) for i in ids}

    def _batch_engine(self) -> TorchBatchEngine:
        if self._engine is None:
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"model {self.model.name!r} is not loaded")
        return self._engine

    @property
    def batching(self) -> bool:
        return self._engine is not None

    def context_length(self) -> int | None:
        return self._ctx if (self._model is not None or self._engine is not None) else None

    def chat_template_handles_tools(self) -> bool:
        from plinth.runtimes.text import template_handles_tools

        return template_handles_tools(self._tok.chat_template if isinstance(self._tok.chat_template, str) else None)

    def prepare_chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, prefill: str = "") -> Prompt:
        if self._tok.chat_template:
            extra: dict[str, Any] = {"tools": tools} if tools else {}
            try:
                text = self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
            except Exception as e:  # jinja errors from the model's own template
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"the model's chat template failed on these messages: {e}") from None
        else:
            from plinth.runtimes.text import ChatTemplate

            text = ChatTemplate(None).render(messages)
        text += prefill
        ids = self._tok(text, add_special_tokens=False)["input_ids"]
        return Prompt(text=text, token_ids=list(ids), n_tokens=len(ids), is_chat=True)

    def prepare_text(self, text: str) -> Prompt:
        ids = self._tok(text)["input_ids"]
        return Prompt(text=text, token_ids=list(ids), n_tokens=len(ids), is_chat=False)

    def count_tokens(self, text: str) -> int | None:
        return len(self._tok(text, add_special_tokens=False)["input_ids"]) if text else 0

    def vocab_size(self) -> int | None:
        if self._engine is not None:
            return int(self._engine.spec.vocab)
        return int(self._model.config.vocab_size) if self._model is not None else None

    def check_constraint(self, constraint: OutputConstraint) -> None:
        """Compile the constraint with llguidance (docs/adr/0111) into a matcher that each
        sequence copies; compiled matchers are kept per schema (LRU)."""
        if self._engine is None and self._model is None:
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"model {self.model.name!r} is not loaded")
        try:
            import llguidance
            import llguidance.hf
        except ImportError:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                "structured outputs on the torch runtime need llguidance: pip install llguidance",
                param="response_format",
            ) from None
        key = constraint.key()
        with self._constraints_lock:
            found = self._matchers.get(key)
            if found is not None:
                self._matchers.move_to_end(key)
                constraint.compiled = found
                return
            if self._ll_tokenizer is None:
                n_vocab = self._engine.spec.vocab if self._engine is not None else int(self._model.config.vocab_size)
                self._ll_tokenizer = llguidance.hf.from_tokenizer(self._tok, n_vocab=n_vocab, eos_token=sorted(self._eos_ids))
            tok = self._ll_tokenizer
        schema = constraint.schema if constraint.kind == "json_schema" and constraint.schema else {"type": "object"}
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(bounded_like_llamacpp(schema), defaults={"whitespace_flexible": False})
            matcher = llguidance.LLMatcher(tok, grammar, log_level=0)
        except Exception as e:  # ValueError and the like for what llguidance cannot compile
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"the schema cannot be compiled: {e}"[:300], param=_SCHEMA_PARAM) from None
        if matcher.is_error():
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"the schema cannot be compiled: {matcher.get_error()}"[:300], param=_SCHEMA_PARAM)
        with self._constraints_lock:
            self._matchers[key] = matcher
            while len(self._matchers) > 64:
                self._matchers.popitem(last=False)
        constraint.compiled = matcher

    def score(self, pairs: list[tuple[list[int], list[int] | str]]) -> list[list[float]]:
        """Teacher-forced scoring: for each (context ids, continuation ids or text) the natural-log
        probability of every continuation token given the context and the tokens before it
        (the base model; per-answer explanations use it). On the batching engine's weights (a
        cache of its own, not the serving slots) the first pair is computed whole and every
        other pair reuses its keys and values over the tokens they share from the start, so
        ablations that change the end of a prompt cost only what follows the change; on the
        generic model, one forward pass per pair."""
        base: tuple[list[int], Any] | None = None  # the first pair's ids and its cache
        out: list[list[float]] = []
        for ctx_ids, given in pairs:
            cont = list(self._tok(given, add_special_tokens=False)["input_ids"]) if isinstance(given, str) else list(given)
            if not ctx_ids or not cont:
                raise PlinthError(ErrorCode.INVALID_REQUEST, "scoring needs a non-empty context and continuation")
            ids = list(ctx_ids) + list(cont)
            if len(ids) > self._ctx:
                raise PlinthError(
                    ErrorCode.CONTEXT_LENGTH_EXCEEDED, f"{len(ids)} tokens to score; the model's context is {self._ctx}", param="messages"
                )
            with torch.inference_mode():
                if self._engine is not None:
                    w = self._engine.w
                    cache = tl.SlotCache(w.spec, rows=1, capacity=len(ids), dtype=w.dtype, device=str(w.device))
                    shared = 0
                    if base is not None:  # reuse the first pair's keys and values up to the first difference
                        limit = min(len(base[0]), len(ctx_ids) - 1)
                        while shared < limit and base[0][shared] == ids[shared]:
                            shared += 1
                        for layer in range(len(cache.k)):
                            cache.k[layer][:, :, :shared] = base[1].k[layer][:, :, :shared]
                            cache.v[layer][:, :, :shared] = base[1].v[layer][:, :, :shared]
                    step = tl.Step(
                        tokens=torch.tensor(ids[shared:], dtype=torch.long, device=w.device),
                        positions=torch.arange(shared, len(ids), device=w.device),
                        n_decode=0,
                        decode_rows=[],
                        decode_lengths=[],
                        segments=[(0, 0, len(ids) - shared, shared)],
                        logits_at=torch.arange(len(ctx_ids) - 1 - shared, len(ids) - 1 - shared, device=w.device),
                    )
                    logits = tl.forward(w, cache, step)
                    if base is None:
                        base = (ids, cache)
                else:
                    at = torch.arange(len(ctx_ids) - 1, len(ids) - 1, device=self.device)
                    with self._lock:
                        model = self._model if self._peft is None else self._peft
                        logits = model(input_ids=torch.tensor([ids], device=self.device)).logits[0, at].float()
                logp = torch.log_softmax(logits, dim=-1)
                target = torch.tensor(cont, dtype=torch.long, device=logp.device).unsqueeze(1)
                out.append([float(x) for x in logp.gather(1, target).squeeze(1).cpu()])
        return out

    def generate(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event, adapter: AdapterRef | None = None
    ) -> Iterator[Delta]:
        if self._engine is not None:
            yield from EngineRuntimeMixin.generate(self, prompt, params, cancel, adapter)
            return
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
        if self._engine is not None:
            return self._engine.loaded_adapters()
        return list(self._adapters)

    def stats(self) -> dict[str, Any]:
        if self._engine is not None:
            return self._engine_stats(self._engine)
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
        matcher = new_matcher(params.constraint) if params.constraint is not None else None
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
            logp = torch.log_softmax(logits, dim=-1) if params.logprobs is not None else None
            if params.logit_bias:
                apply_logit_bias(logits, params.logit_bias)
            if matcher is not None:
                mask_logits(matcher, logits)
            token = self._sample(logits, params, gen)
            if token in self._eos_ids:
                finish = "stop"
                break
            if matcher is not None and not matcher.consume_token(token):
                raise PlinthError(ErrorCode.INTERNAL, f"structured output failed: {matcher.get_error()}")
            out_ids.append(token)
            counts[token] = counts.get(token, 0) + 1
            text = self._tok.decode(out_ids, skip_special_tokens=True)
            lps = None
            if logp is not None and params.logprobs is not None:
                lps = [token_logprob(self._tok.backend_tokenizer, logp, token, params.logprobs)]
            # Emit only text that is stable (a trailing U+FFFD may be half a character).
            if not text.endswith("\ufffd") and len(text) > len(emitted):
                yield Delta(text=text[len(emitted) :], n_tokens=1, logprobs=lps)
                emitted = text
            else:
                yield Delta(text="", n_tokens=1, logprobs=lps)
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
        if self._engine is not None:
            e = self._engine
            return RuntimeHealth(
                ok=e.alive(),
                detail="" if e.alive() else "engine thread stopped",
                info={"path": "batching", "threads": self.options.threads, **e.describe()},
            )
        if self._model is None:
            return RuntimeHealth(ok=False, detail="not loaded")
        dtype = str(self.dtype).replace("torch.", "")
        return RuntimeHealth(ok=True, info={"path": "generic", "device": self.device, "dtype": dtype, "n_ctx": self._ctx})

    def unload(self) -> None:
        eng, self._engine = self._engine, None
        if eng is not None:
            eng.close()
        self._peft = None
        self._model = None
        self._tok = None


#: the largest magnitude of a JSON number the llama.cpp grammars write (16 integral digits)
_NUMBER_BOUND = 10**16 - 1
#: the finest step of a ``number`` without one: at most 10 fractional digits (llama.cpp's grammars
#: allow 16; llguidance takes ``multipleOf`` down to 1e-10 and warns on finer floats)
_NUMBER_STEP = 1e-10


def bounded_like_llamacpp(schema: Any) -> Any:
    """``schema`` with the bounds llama.cpp's grammars put on what JSON Schema leaves open, so
    both engines enforce the same answers: a tuple (``prefixItems`` without ``items``) ends
    after its items, a number without ``minimum``/``maximum`` has at most 16 integral
    digits, and a ``number`` without ``multipleOf`` at most 10 fractional digits (no exponent).
    Without them a sampled answer on the torch engine could run to ``max_tokens`` inside a
    never-ending tuple, integral part or fraction (bench/structured.py: "mean": 26.1223248987...
    until the answer was cut)."""
    if isinstance(schema, list):
        return [bounded_like_llamacpp(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k in ("const", "enum", "default", "examples") else bounded_like_llamacpp(v)) for k, v in schema.items()}
    if "prefixItems" in out and "items" not in out:
        out["items"] = False
    if out.get("type") in ("integer", "number") and not ({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & set(out)):
        out["minimum"], out["maximum"] = -_NUMBER_BOUND, _NUMBER_BOUND
    if out.get("type") == "number" and "multipleOf" not in out:
        out["multipleOf"] = _NUMBER_STEP
    return out
