"""Continuous batching for llama.cpp through its low-level API.

One engine thread owns one ``llama_context`` whose KV cache is shared by up to
``max_batch`` sequences (one llama.cpp sequence id each). Every step it

1. takes new requests from its inbox and admits them (first come, first served) while a
   sequence id is free; each id owns its own KV stream of ``n_ctx_per_seq`` cells, so a
   sequence attends only to its own cells and its logits do not depend on its batch-mates;
2. builds ONE ``llama_batch``: the last sampled token of every decoding sequence and prompt
   chunks of sequences still in prefill (within ``prefill_chunk`` tokens per step, given
   first come first served, so a long prompt is spread over several steps instead of
   stalling the running streams), laid out in sequence-id order, ids being handed out
   lowest first (see "Sequence ids and ubatches" below);
3. calls ``llama_decode`` once and samples every sequence that produced logits with its own
   sampler chain (temperature, top-p, penalties, seed): per-request parameters and seeded
   reproducibility hold inside a batch;
4. retires finished, cancelled or failed sequences and frees their KV cells at once.

Structured outputs: a sequence with an :class:`~plinth.runtimes.base.OutputConstraint` also
gets a llama.cpp grammar sampler (the JSON schema converted to GBNF). It is sampled as
llama.cpp's own ``common_sampler`` does: the chain picks a token from the raw logits, the
grammar checks that one token, and only if the grammar rejects it are the logits masked by
the grammar and the chain applied again; end-of-generation tokens are allowed only where
the grammar accepts. Sequences without a constraint are sampled exactly as before.

Sequence ids and ubatches: with one KV stream per sequence, llama.cpp splits a batch into
"equal" ubatches, and one ubatch only takes sequences whose ids follow each other in the
batch (0, 1, 2, ...; ``split_equal`` with ``sequential``). Every ubatch is a full pass over
the weights, so a batch laid out in admission order (ids 0 1 2 4 5 6 7 3 once id 3 was
reused) cost up to one pass per sequence. Handing out the lowest free id keeps the running
ids compact, and laying the batch out by id makes each run of consecutive ids one ubatch:
8 decoding sequences with ids 0-7 are one pass. The layout changes no sequence's numbers
(each attends only to its own stream), so batch invariance holds as before. The engine
counts the runs it lays out (``id_runs``; ``full_batch_id_runs`` over the steps with every
id taken, ``full_batch_steps``, where it is always one run per step).

LoRA adapters apply to a whole llama.cpp context, so sequences are grouped by adapter and a
step decodes one group; groups take turns (round-robin). Requests for the same adapter
share a batch; requests for different adapters share the base weights and the engine.
Adapters load on first use and are evicted least-recently-used beyond a byte budget.
"""

from __future__ import annotations

import collections
import ctypes
import heapq
import json
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import llama_grammar

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes.base import OutputConstraint, SamplingParams, TokenLogprob
from plinth.runtimes.batching import BASE, AdapterSpec, BatchEngine, Sequence, Sink
from plinth.runtimes.text import IncrementalDecoder

log = logging.getLogger("plinth.runtimes.llamacpp")

__all__ = ["BASE", "AdapterSpec", "LlamaBatchEngine", "Sink"]


@dataclass
class _Seq(Sequence):
    seq_id: int = -1
    sampler: object = None
    grammar: object = None  # a llama.cpp grammar sampler (structured outputs)
    decoder: IncrementalDecoder = field(default_factory=IncrementalDecoder)


_SCHEMA_PARAM = "response_format.json_schema.schema"
#: greedy rows whose pick the grammar rejects look for the best allowed token among the top
#: 64 logits, then the next 960, before masking the whole vocabulary
_TOP_K = (64, 1024)
#: sampled rows whose draw the grammar rejects draw again this many times before a full mask
_REDRAWS = 8
#: ``llama_token_data`` as a numpy record, so a logits row is copied in without a Python loop
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
#: JSON strings may not hold raw control characters; the converter's ``char`` rule lets them through
_CHAR_RULE = re.compile(r'^char ::= \[\^"\\\\\] \|', re.MULTILINE)
_SAFE_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


class _SchemaConverter(llama_grammar.SchemaConverter):
    """llama-cpp-python's converter, with literals escaped for GBNF (it escapes quotes and
    newlines but not backslashes, so a name or enum value holding a quote, a backslash or
    a control character became a broken or wrong literal)."""

    def _format_literal(self, literal: str) -> str:
        escaped = literal.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n")
        return f'"{escaped}"'


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """A JSON schema (already checked by plinth.serving.structured) as a GBNF grammar."""
    conv = _SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    resolved = conv.resolve_refs(json.loads(json.dumps(schema)), "input")
    conv.visit(resolved, "")
    return _CHAR_RULE.sub(lambda _: _SAFE_CHAR, conv.format_grammar())


def _quiet_llama_logs() -> None:
    """llama.cpp logs every graph build at debug level through a Python callback; keep
    only errors (the callback checks this logger's level before printing)."""
    import llama_cpp._logger as llama_logger

    if not logging.getLogger("plinth").isEnabledFor(logging.DEBUG):
        llama_logger.set_verbose(False)


class _LoadedAdapter:
    def __init__(self, spec: AdapterSpec, handle: Any) -> None:  # a llama_adapter_lora_p
        self.spec = spec
        self.handle = handle
        self.last_used = time.monotonic()


class LlamaBatchEngine(BatchEngine):
    kind = "llama.cpp"

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx_per_seq: int,
        max_batch: int,
        threads: int,
        prefill_chunk: int = 256,
        adapter_budget_bytes: int = 512 * 1024 * 1024,
        extra_buffers: bool = False,
    ) -> None:
        llama_cpp.llama_backend_init()
        _quiet_llama_logs()
        mparams = llama_cpp.llama_model_default_params()
        # Extra buffer types (weight repacking, AMX tiles) are off by default: with a build
        # that detected AMX (-march=native on recent Xeons), llama.cpp 0.3.36 crashes on the
        # first decode on some virtual machines, and always when a LoRA adapter is applied
        # ("lora ... cannot use buft 'AMX'"). See docs/adr/0012.
        mparams.use_extra_bufts = extra_buffers
        self._model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), mparams)
        if not self._model:
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"llama.cpp could not load {model_path}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(self._model))
        super().__init__(
            max_batch=max_batch,
            n_ctx_per_seq=min(n_ctx_per_seq, self.n_ctx_train or n_ctx_per_seq),
            thread_name=f"llama-batch-{model_path.name[:16]}",
        )
        # One KV stream per sequence (not one shared pool): a sequence attends only to its own
        # cells, so its logits do not depend on what else is in the batch.
        self.kv_cells = kv_cells = self.n_ctx_per_seq * max_batch
        self.prefill_chunk = max(16, prefill_chunk)
        self.n_batch = max(self.prefill_chunk + max_batch, 64)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = kv_cells
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = self.n_batch
        cparams.n_seq_max = max_batch
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.kv_unified = False
        cparams.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"llama.cpp could not create a context for {model_path}")
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._piece = ctypes.create_string_buffer(256)
        # candidates of one logits row, for sequences sampled under a grammar (engine thread only)
        self._cand = np.zeros(self.n_vocab, dtype=_TOKEN_DATA)
        self._ids = np.arange(self.n_vocab, dtype=np.int32)
        self._cur = llama_cpp.llama_token_data_array()
        self._one = np.zeros(1, dtype=_TOKEN_DATA)
        self._one_arr = llama_cpp.llama_token_data_array()
        self._top = np.zeros(_TOP_K[-1], dtype=_TOKEN_DATA)
        self._top_arr = llama_cpp.llama_token_data_array()

        self._active: dict[int, _Seq] = {}
        self._free_ids = list(range(max_batch))  # a min-heap: the lowest free id goes first
        self._adapters: collections.OrderedDict[str, _LoadedAdapter] = collections.OrderedDict()
        self._adapter_budget = adapter_budget_bytes
        self._current_adapter: str | None = BASE
        self._group_turn = 0
        self._start()

    # -- public API (any thread) -----------------------------------------------------------
    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 16
        while True:
            buf = (llama_cpp.llama_token * cap)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, cap, add_bos, True)
            if n >= 0:
                return list(buf[:n])
            cap = -n

    def compile_constraint(self, constraint: OutputConstraint) -> str:
        """The GBNF grammar that enforces ``constraint``, checked to parse (any thread)."""
        try:
            gbnf = llama_grammar.JSON_GBNF if constraint.kind == "json_object" else schema_to_gbnf(constraint.schema or {})
        except Exception as e:  # the converter asserts on what it cannot convert
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"the schema cannot be made into a grammar: {e}"[:300], param=_SCHEMA_PARAM
            ) from None
        sampler = llama_cpp.llama_sampler_init_grammar(self._vocab, gbnf.encode(), b"root")
        if not sampler:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "the schema gave a grammar llama.cpp cannot parse", param=_SCHEMA_PARAM)
        llama_cpp.llama_sampler_free(sampler)
        return gbnf

    def _new_sequence(self, tokens: list[int], params: SamplingParams, cancel: threading.Event, out: Sink) -> _Seq:
        return _Seq(tokens=tokens, params=params, cancel=cancel, out=out)

    def loaded_adapters(self) -> list[str]:
        return list(self._adapters)

    @property
    def running(self) -> int:
        return len(self._active)

    def _free(self) -> None:
        for ad in self._adapters.values():
            llama_cpp.llama_adapter_lora_free(ad.handle)
        self._adapters.clear()
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._ctx)
        llama_cpp.llama_model_free(self._model)
        self._ctx = self._model = None

    # -- engine thread hooks -----------------------------------------------------------------
    def _has_active(self) -> bool:
        return bool(self._active)

    def _active_sequences(self) -> list[Sequence]:
        return list(self._active.values())

    def _has_room(self) -> bool:
        # Each sequence id owns n_ctx_per_seq KV cells (checked in submit): a free id is room.
        return bool(self._free_ids)

    def _admit_one(self, seq: Sequence) -> None:
        assert isinstance(seq, _Seq)
        c = seq.params.constraint
        if c is not None:
            gbnf = c.compiled if isinstance(c.compiled, str) else self.compile_constraint(c)
            seq.grammar = llama_cpp.llama_sampler_init_grammar(self._vocab, gbnf.encode(), b"root")
            if not seq.grammar:
                raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, "llama.cpp could not start the grammar sampler")
        if seq.adapter_spec is not None:
            self._ensure_adapter(seq.adapter_spec)
        seq.sampler = self._make_sampler(seq.params)
        seq.seq_id = heapq.heappop(self._free_ids)
        self._active[seq.seq_id] = seq

    def _make_sampler(self, p: SamplingParams) -> object:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if p.logit_bias:
            biases = (llama_cpp.llama_logit_bias * len(p.logit_bias))(*(llama_cpp.llama_logit_bias(t, b) for t, b in p.logit_bias.items()))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_logit_bias(self.n_vocab, len(p.logit_bias), biases))
        if p.presence_penalty or p.frequency_penalty:
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_penalties(self.n_vocab, 64, 1.0, p.frequency_penalty, p.presence_penalty)
            )
        if p.temperature <= 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(p.temperature))
            if p.top_p < 1.0:
                llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_p(p.top_p, 1))
            seed = p.seed if p.seed is not None else int.from_bytes(os.urandom(4), "little")
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    # -- adapters ----------------------------------------------------------------------------
    def _ensure_adapter(self, spec: AdapterSpec) -> None:
        loaded = self._adapters.get(spec.key)
        if loaded is not None:
            loaded.last_used = time.monotonic()
            self._adapters.move_to_end(spec.key)
            return
        self._evict_for(spec.size_bytes)
        handle = llama_cpp.llama_adapter_lora_init(self._model, str(spec.path).encode())
        if not handle:
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"llama.cpp could not load the LoRA adapter {spec.key!r}")
        self._adapters[spec.key] = _LoadedAdapter(spec, handle)
        self.stats["adapter_loads"] += 1

    def _evict_for(self, incoming: int) -> None:
        in_use = {s.adapter for s in self._active.values()}
        total = sum(a.spec.size_bytes for a in self._adapters.values())
        for key in list(self._adapters):  # oldest first
            if total + incoming <= self._adapter_budget:
                break
            if key in in_use:
                continue
            ad = self._adapters.pop(key)
            if self._current_adapter == key:
                self._apply_adapter(BASE)
            llama_cpp.llama_adapter_lora_free(ad.handle)
            total -= ad.spec.size_bytes
            self.stats["adapter_evictions"] += 1
            log.info("evicted LoRA adapter %s (budget %d bytes)", key, self._adapter_budget)

    def _apply_adapter(self, key: str) -> None:
        if key == self._current_adapter:
            return
        if key == BASE:
            rc = llama_cpp.llama_set_adapters_lora(self._ctx, None, 0, None)
        else:
            ad = self._adapters[key]
            arr = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(ad.handle)
            scales = (ctypes.c_float * 1)(ad.spec.scale)
            rc = llama_cpp.llama_set_adapters_lora(self._ctx, arr, 1, scales)
        if rc != 0:
            raise RuntimeError(f"llama_set_adapters_lora failed with {rc}")
        self._current_adapter = key

    # -- one step ----------------------------------------------------------------------------
    def _pick_group(self) -> str:
        groups = sorted({s.adapter for s in self._active.values()})
        if len(groups) == 1:
            return groups[0]
        self._group_turn = (self._group_turn + 1) % len(groups)
        return groups[self._group_turn]

    def _step(self) -> None:
        group = self._pick_group()
        self._apply_adapter(group)
        b = self._batch
        n = 0
        outputs: list[tuple[int, _Seq]] = []
        members = [s for s in self._active.values() if s.adapter == group]  # in admission order
        # prompt tokens this step, first come first served within the chunk; n_batch leaves
        # room for them and one token of every decoding sequence
        takes: dict[int, int] = {}
        chunk_left = self.prefill_chunk
        for seq in members:
            if seq.prefilling and chunk_left > 0:
                takes[seq.seq_id] = take = min(len(seq.tokens) - seq.n_past, chunk_left)
                chunk_left -= take
        # laid out by sequence id: each run of consecutive ids is one ubatch (module docstring)
        runs, prev = 0, -2
        for seq in sorted(members, key=lambda s: s.seq_id):
            if seq.prefilling and not takes.get(seq.seq_id):
                continue  # no prompt tokens this step
            runs += seq.seq_id != prev + 1
            prev = seq.seq_id
            if not seq.prefilling:
                b.token[n] = seq.last_token
                b.pos[n] = seq.n_past
                b.n_seq_id[n] = 1
                b.seq_id[n][0] = seq.seq_id
                b.logits[n] = 1
                outputs.append((n, seq))
                seq.n_past += 1
                n += 1
                continue
            take = takes.get(seq.seq_id, 0)
            for i in range(take):
                b.token[n] = seq.tokens[seq.n_past + i]
                b.pos[n] = seq.n_past + i
                b.n_seq_id[n] = 1
                b.seq_id[n][0] = seq.seq_id
                b.logits[n] = 0
                n += 1
            seq.n_past += take
            if take and not seq.prefilling:
                b.logits[n - 1] = 1
                outputs.append((n - 1, seq))
        if n == 0:
            return
        b.n_tokens = n
        grouped = len(members) < len(self._active)
        rc = llama_cpp.llama_decode(self._ctx, b)
        if rc != 0:
            # 1 = no KV slot (cannot happen: submit checks each sequence fits its stream); <0 = error.
            err = PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"llama_decode failed with code {rc}")
            for seq in members:
                self._finish(seq, None, error=err)
            return
        self._note_batch(len(outputs))
        self.stats["id_runs"] += runs
        if len(members) == self.max_batch:
            self.stats["full_batch_steps"] += 1
            self.stats["full_batch_id_runs"] += runs
        for idx, seq in outputs:
            if seq.grammar is not None:
                token = self._sample_constrained(seq, idx)
                if token is None:
                    continue
            else:
                token = llama_cpp.llama_sampler_sample(seq.sampler, self._ctx, idx)
            self._accept(seq, token, idx)
        if grouped:
            self.stats["steps_with_adapter_groups"] += 1

    def _candidates(self, idx: int) -> Any:
        """The logits of output ``idx`` as a fresh candidate array (all tokens, unsorted)."""
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self._ctx, idx), shape=(self.n_vocab,))
        cand = self._cand
        cand["id"] = self._ids
        cand["logit"] = row
        cand["p"] = 0.0
        cur = self._cur
        cur.data = cand.ctypes.data_as(llama_cpp.llama_token_data_p)  # type: ignore[assignment]
        cur.size = self.n_vocab
        cur.selected = -1
        cur.sorted = False
        return cur

    def _sample_constrained(self, seq: _Seq, idx: int) -> int | None:
        """Sample under the sequence's grammar, as llama.cpp's common_sampler does: the chain
        picks from the raw logits and the grammar checks that one token. Only if the grammar
        rejects it is more work done: greedy rows take the best token the grammar allows
        among the top logits (the same token a full mask would give, found without
        matching the whole vocabulary), sampled rows draw again from the chain (rejection
        sampling: the chain's distribution restricted to what the grammar allows), and
        only when that fails too are all logits masked by the grammar before the chain picks.
        None when the sequence was failed instead."""
        cur = self._candidates(idx)
        llama_cpp.llama_sampler_apply(seq.sampler, ctypes.byref(cur))
        token: int | None = int(cur.data[cur.selected].id)
        if not self._grammar_allows(seq, token):  # type: ignore[arg-type]
            self.stats["grammar_resamples"] += 1
            p = seq.params
            if p.temperature <= 0 and not (p.presence_penalty or p.frequency_penalty):
                token = self._greedy_in_grammar(seq, idx)
            else:
                token = None
                for _ in range(_REDRAWS):
                    cur = self._candidates(idx)
                    llama_cpp.llama_sampler_apply(seq.sampler, ctypes.byref(cur))
                    drawn = int(cur.data[cur.selected].id)
                    if self._grammar_allows(seq, drawn):
                        token = drawn
                        break
            if token is None:
                self.stats["grammar_full_masks"] += 1
                cur = self._candidates(idx)
                llama_cpp.llama_sampler_apply(seq.grammar, ctypes.byref(cur))
                llama_cpp.llama_sampler_apply(seq.sampler, ctypes.byref(cur))
                picked = cur.data[cur.selected]
                token = int(picked.id)
                if math.isinf(picked.logit):  # the grammar allows no token at all: never accept one it refuses
                    err = PlinthError(ErrorCode.INTERNAL, "the grammar of this response_format allows no next token")
                    self._finish(seq, None, error=err)
                    return None
        if not llama_cpp.llama_vocab_is_eog(self._vocab, token):
            llama_cpp.llama_sampler_accept(seq.grammar, token)
        llama_cpp.llama_sampler_accept(seq.sampler, token)
        self.stats["constrained_tokens"] += 1
        return token

    def _grammar_allows(self, seq: _Seq, token: int) -> bool:
        one = self._one
        one[0] = (token, 1.0, 0.0)
        arr = self._one_arr
        arr.data = one.ctypes.data_as(llama_cpp.llama_token_data_p)  # type: ignore[assignment]
        arr.size, arr.selected, arr.sorted = 1, -1, False
        llama_cpp.llama_sampler_apply(seq.grammar, ctypes.byref(arr))
        return not math.isinf(float(one[0]["logit"]))

    def _greedy_in_grammar(self, seq: _Seq, idx: int) -> int | None:
        """The highest-logit token the grammar allows among the top ``_TOP_K[-1]``, looked for
        in windows of growing size (None: none is)."""
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self._ctx, idx), shape=(self.n_vocab,))
        k = min(_TOP_K[-1], self.n_vocab)
        top = np.argpartition(row, -k)[-k:]
        top = top[np.argsort(-row[top], kind="stable")]
        done = 0
        for size in _TOP_K:
            size = min(size, k)
            if size <= done:
                break
            window = self._top[: size - done]
            window["id"] = top[done:size]
            window["logit"] = row[top[done:size]]
            window["p"] = 0.0
            arr = self._top_arr
            arr.data = window.ctypes.data_as(llama_cpp.llama_token_data_p)  # type: ignore[assignment]
            arr.size, arr.selected, arr.sorted = size - done, -1, False
            llama_cpp.llama_sampler_apply(seq.grammar, ctypes.byref(arr))
            allowed = np.flatnonzero(np.isfinite(window["logit"]))
            if allowed.size:
                return int(window["id"][allowed[0]])
            done = size
        return None

    def _accept(self, seq: _Seq, token: int, idx: int = -1) -> None:
        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            self._finish(seq, "stop")
            return
        seq.last_token = token
        piece = self._token_bytes(token)
        logprob = self._logprob(idx, token, piece, seq.params.logprobs) if seq.params.logprobs is not None else None
        self._deliver(seq, seq.decoder.feed(piece), logprob)

    def _logprob(self, idx: int, token: int, piece: bytes, top: int) -> TokenLogprob:
        """The sampled token's log-probability under the model's logits at output ``idx``
        (log-softmax in numpy, only for rows that asked), with the ``top`` most likely tokens."""
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self._ctx, idx), shape=(self.n_vocab,)).astype(np.float64)
        peak = row.max()
        logp = row - (peak + math.log(float(np.exp(row - peak).sum())))
        alternatives: list[tuple[str, list[int], float]] = []
        if top > 0:
            best = np.argpartition(-logp, top)[:top]
            for t in best[np.argsort(-logp[best], kind="stable")]:
                b = self._token_bytes(int(t))
                alternatives.append((b.decode("utf-8", errors="replace"), list(b), float(logp[t])))
        return TokenLogprob(token=piece.decode("utf-8", errors="replace"), bytes=list(piece), logprob=float(logp[token]), top=alternatives)

    def _token_bytes(self, token: int) -> bytes:
        n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        if n < 0:
            self._piece = ctypes.create_string_buffer(-n + 8)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        return self._piece.raw[:n]

    def _release(self, seq: Sequence) -> None:
        assert isinstance(seq, _Seq)
        if seq.seq_id in self._active and self._active[seq.seq_id] is seq:
            del self._active[seq.seq_id]
            llama_cpp.llama_memory_seq_rm(self._mem, seq.seq_id, -1, -1)
            heapq.heappush(self._free_ids, seq.seq_id)
        if seq.sampler is not None:
            llama_cpp.llama_sampler_free(seq.sampler)
            seq.sampler = None
        if seq.grammar is not None:
            llama_cpp.llama_sampler_free(seq.grammar)
            seq.grammar = None

    def _tail(self, seq: Sequence) -> str:
        assert isinstance(seq, _Seq)
        return seq.decoder.flush()
