"""Continuous batching in PyTorch, with many LoRA adapters in one batch.

One engine thread owns the model weights (:mod:`plinth.runtimes.torch_llama`), a
:class:`~plinth.runtimes.torch_llama.SlotCache` with one row per running sequence, and a
bank of loaded LoRA adapters. Every step it

1. admits waiting requests while a cache row is free (first come, first served); each row
   holds ``n_ctx_per_seq`` positions, checked when the request is submitted;
2. runs one decode forward for the next token of every decoding sequence (in groups of at
   most ``DECODE_GROUP`` rows), then prefills prompts in arrival order, one forward per
   prompt chunk of ``prefill_chunk`` tokens (chunk boundaries are fixed multiples of
   ``prefill_chunk`` from the prompt's start), at most about ``prefill_chunk`` prompt tokens
   per step, so a long prompt is spread over several steps instead of stalling the running
   streams;
3. computes logits only for the tokens that are sampled, and samples each sequence with its
   own parameters (temperature, top-p, penalties) and its own seeded generator, so seeded
   sampling is reproducible inside a batch;
4. retires finished or cancelled sequences; their rows are reused as they are.

Structured outputs: a sequence with an :class:`~plinth.runtimes.base.OutputConstraint` has
its own llguidance matcher (made from the one its runtime compiled, see docs/adr/0111); before
sampling, that row's logits outside the grammar's allowed tokens are set to -inf (end of
sequence only where the grammar accepts), and each accepted token advances the matcher.
Rows without a constraint are not touched, so their answers stay batch-invariant.

LoRA adapters are applied per token: every decode row may use another adapter (batched
matmuls over the rows' gathered adapter slots), a prompt chunk uses its request's adapter.
Adapters load on first use from PEFT directories (safetensors only) and are evicted
least-recently-used beyond a byte budget; an adapter in use is never evicted.

Batch invariance: a sequence's logits, and so its greedy (or seeded) answer, are the same
whatever else runs in its steps. Attention is computed row by row over each row's own
positions; prompt chunks are their own forwards with fixed boundaries, so a prompt is
computed the same way whatever else is running; and decode rows run in batches whose sizes
come from a :class:`DecodePlan` measured when the model loads (:meth:`TorchBatchEngine.
_calibrate`): matmul kernels (oneDNN bf16, MKL fp32) may give a row other bits at another
batch size or another position in the batch, and which sizes agree differs from CPU to CPU,
so the engine runs a probe row through the real model at every candidate size and position
and keeps only sizes that give it identical logits; a decode group is padded up to the
nearest such size. Size 1 always qualifies, so the guarantee holds on every CPU; what varies
is how much batching it costs. See docs/adr/0051.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes import torch_llama as tl
from plinth.runtimes.base import SamplingParams, TokenLogprob
from plinth.runtimes.batching import BASE, AdapterSpec, BatchEngine, Sequence, Sink

log = logging.getLogger("plinth.runtimes.torch")

#: the decode batch sizes a plan may use (a group of rows is padded up to one of them)
DECODE_SIZES = (1, 2, 4, 8, 16, 32)
#: decode rows per forward when batch invariance is switched off
DECODE_GROUP = 32
#: the token the calibration probe decodes (any id in the vocabulary would do)
_PROBE_TOKEN = 1
#: how many cached positions the probe attends over. More than one: with a single key the
#: attention output is the value row exactly, so the query and key projections never reach
#: the logits, and a size whose q/k columns differ (seen on an AVX-512 bf16 EPYC: every size
#: above 1 agreed with the others but not with size 1) would pass unseen
_PROBE_CONTEXT = 24


@dataclass(frozen=True)
class DecodePlan:
    """The batch sizes decode steps run at.

    ``sizes`` (ascending) were measured to give a row the same logits at every position and
    whatever the other rows hold (see :func:`choose_plan`); ``groups`` pads to them. An
    empty ``sizes`` means no padding (invariance switched off): groups of up to
    ``DECODE_GROUP`` rows at their own size. ``invariant`` says whether the plan promises
    batch invariance.
    """

    sizes: tuple[int, ...]
    invariant: bool

    def groups(self, n: int) -> list[tuple[int, int]]:
        """(rows, batch size) of each forward for ``n`` decoding rows."""
        out: list[tuple[int, int]] = []
        if not self.sizes:
            while n > 0:
                k = min(n, DECODE_GROUP)
                out.append((k, k))
                n -= k
            return out
        largest = self.sizes[-1]
        while n > largest:
            out.append((largest, largest))
            n -= largest
        if n > 0:
            out.append((n, next(size for size in self.sizes if size >= n)))
        return out


def candidate_sizes(max_batch: int) -> tuple[int, ...]:
    """The sizes worth measuring for an engine of ``max_batch`` rows: up to the first one
    that holds them all (at most ``DECODE_SIZES[-1]``)."""
    out = []
    for size in DECODE_SIZES:
        out.append(size)
        if size >= max_batch:
            break
    return tuple(out)


def choose_plan(probes: dict[int, list[torch.Tensor]], seconds: dict[int, float] | None = None, max_batch: int = 0) -> DecodePlan:
    """The plan from measured probe logits.

    ``probes[size]`` holds the logits one probe row got in batches of ``size`` rows, at
    several positions and beside different other rows (for size 1: the same forward run
    twice). A size qualifies when all of its probes are bit-identical; qualifying sizes are
    grouped by identical logits, and any group keeps the promise. With ``seconds`` (the time
    of one forward at each size) and ``max_batch``, the group wins that decodes 1, 2, ...,
    ``max_batch`` rows in the least time in all; without them, the group with the largest
    size (ties: the smallest smallest size). If even size 1 disagrees with itself the kernels
    are not deterministic: batched rows are then run alone (size 1) and the plan does not
    promise invariance.
    """
    if 1 not in probes:
        raise ValueError("the probes must include size 1")
    first = probes[1][0]
    deterministic = all(torch.equal(first, p) for p in probes[1])
    if not deterministic:
        return DecodePlan(sizes=(1,), invariant=False)
    classes: list[tuple[torch.Tensor, list[int]]] = []
    for size in sorted(probes):
        ps = probes[size]
        if not ps or not all(torch.equal(ps[0], p) for p in ps[1:]):
            continue  # a row's result depends on its position or its neighbours at this size
        for ref, members in classes:
            if torch.equal(ref, ps[0]):
                members.append(size)
                break
        else:
            classes.append((ps[0], [size]))
    groups = [tuple(sorted(members)) for _, members in classes]
    if seconds and max_batch > 0:

        def total(sizes: tuple[int, ...]) -> float:
            plan = DecodePlan(sizes=sizes, invariant=True)
            return sum(seconds[size] for n in range(1, max_batch + 1) for _, size in plan.groups(n))

        best = min(groups, key=lambda g: (total(g), -g[-1]))
    else:
        best = max(groups, key=lambda g: (g[-1], -g[0]))
    return DecodePlan(sizes=best, invariant=True)


@dataclass
class _TSeq(Sequence):
    row: int = -1
    slot: int = 0  # adapter slot in the bank (0: none)
    generator: torch.Generator | None = None
    counts: dict[int, int] = field(default_factory=dict)
    decoder: Any = None  # tokenizers.decoders.DecodeStream
    matcher: Any = None  # llguidance.LLMatcher (structured outputs)
    failed: PlinthError | None = None  # the matcher failed: the sequence ends with this error
    logp: torch.Tensor | None = None  # the log-softmax of the row just sampled (logprobs asked for)


@dataclass
class _Loaded:
    key: str
    slot: int
    size_bytes: int
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)


class TorchBatchEngine(BatchEngine):
    kind = "torch"

    def __init__(
        self,
        load: Callable[[], tl.LlamaWeights],
        tokenizer: Any,  # tokenizers.Tokenizer
        eos_ids: set[int],
        *,
        n_ctx_per_seq: int,
        max_batch: int,
        prefill_chunk: int = 256,
        adapter_budget_bytes: int = 512 * 1024 * 1024,
        threads: int | None = None,
        batch_invariant: bool = True,
        name: str = "model",
    ) -> None:
        """``load`` makes the weights; it runs on the engine thread, which then does all of
        the model's tensor work (see :meth:`_on_thread_start`). Raises what ``load`` raised."""
        super().__init__(max_batch=max_batch, n_ctx_per_seq=n_ctx_per_seq, thread_name=f"torch-batch-{name[:16]}")
        self._load = load
        self._threads = threads
        self._batch_invariant = batch_invariant
        self.plan = DecodePlan(sizes=(), invariant=False)
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self.tokenizer = tokenizer
        self.eos_ids = set(eos_ids)
        self.prefill_chunk = max(16, prefill_chunk)
        self._active: dict[int, _TSeq] = {}  # row -> sequence, in admission order
        self._free_rows = list(range(max_batch - 1, -1, -1))
        self._bank: tl.LoraBank | None = None
        self._adapters: collections.OrderedDict[str, _Loaded] = collections.OrderedDict()
        self._free_slots: list[int] = []
        self._adapter_budget = adapter_budget_bytes
        self._start()
        self._ready.wait()
        if self._load_error is not None:
            raise self._load_error

    def _on_thread_start(self) -> None:
        # Every tensor operation of the model runs on this one thread. With GNU OpenMP each
        # thread that runs parallel regions keeps a team of worker threads; once two threads
        # have teams, there are more OpenMP threads than cores and libgomp throttles its spin
        # waits, which measured 45 -> 77 ms per decode step of 8 rows on 2 cores.
        try:
            if self._threads:
                torch.set_num_threads(self._threads)
            self.w = self._load()
            self.spec = self.w.spec
            self.device = str(self.w.device)
            self.cache = tl.SlotCache(self.spec, rows=self.max_batch, capacity=self.n_ctx_per_seq, dtype=self.w.dtype, device=self.device)
            # the calibration probe's own cache: row 0 for the probe, row 1 for its neighbours
            self._probe_cache = tl.SlotCache(self.spec, rows=2, capacity=_PROBE_CONTEXT, dtype=self.w.dtype, device=self.device)
            gen = torch.Generator().manual_seed(0)
            for t in self._probe_cache.k + self._probe_cache.v:  # a context to attend over
                t.copy_(torch.randn(t.shape, generator=gen).to(t.dtype))
            if self._batch_invariant:
                self.plan = self._calibrate()
        except BaseException as e:
            self._load_error = e
            self._stop.set()
            raise
        finally:
            self._ready.set()

    # -- public ------------------------------------------------------------------------------
    def _new_sequence(self, tokens: list[int], params: SamplingParams, cancel: threading.Event, out: Sink) -> _TSeq:
        if any(t < 0 or t >= self.spec.vocab for t in tokens):
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"a prompt token is outside the vocabulary of {self.spec.vocab}")
        return _TSeq(tokens=tokens, params=params, cancel=cancel, out=out)

    @property
    def running(self) -> int:
        return len(self._active)

    def loaded_adapters(self) -> list[str]:
        return list(self._adapters)

    def memory_bytes(self) -> dict[str, int]:
        bank = 0
        if self._bank is not None:
            bank = sum(t.numel() * t.element_size() for ts in list(self._bank.a.values()) + list(self._bank.b.values()) for t in ts)
        return {"weights": self.w.nbytes(), "kv_cache": self.cache.nbytes(), "lora_bank": bank}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "device": self.device,
            "dtype": str(self.w.dtype).replace("torch.", ""),
            "batch_invariant": self.plan.invariant,
            "decode_sizes": list(self.plan.sizes),
            **self.memory_bytes(),
        }

    def _free(self) -> None:
        self._active.clear()
        self._bank = None
        self._adapters.clear()

    # -- engine thread hooks -----------------------------------------------------------------
    def _has_active(self) -> bool:
        return bool(self._active)

    def _active_sequences(self) -> list[Sequence]:
        return list(self._active.values())

    def _has_room(self) -> bool:
        return bool(self._free_rows)

    def _admit_one(self, seq: Sequence) -> None:
        assert isinstance(seq, _TSeq)
        from tokenizers.decoders import DecodeStream

        if seq.adapter_spec is not None:
            loaded = self._ensure_adapter(seq.adapter_spec)
            loaded.users += 1
            seq.slot = loaded.slot
        if seq.params.temperature > 0:
            seq.generator = torch.Generator(device="cpu")
            # torch.seed() would reseed the process-wide generator: draw from the OS instead.
            seq.generator.manual_seed(seq.params.seed if seq.params.seed is not None else secrets.randbits(63))
        seq.decoder = DecodeStream(skip_special_tokens=True)
        if seq.params.constraint is not None:
            seq.matcher = new_matcher(seq.params.constraint)
        seq.row = self._free_rows.pop()
        self._active[seq.row] = seq

    def _release(self, seq: Sequence) -> None:
        assert isinstance(seq, _TSeq)
        if self._active.get(seq.row) is seq:
            del self._active[seq.row]
            self._free_rows.append(seq.row)
            seq.row = -1
            if seq.adapter != BASE and seq.adapter in self._adapters:
                self._adapters[seq.adapter].users -= 1

    # -- one step ----------------------------------------------------------------------------
    def _step(self) -> None:
        decoding = [s for s in self._active.values() if not s.prefilling]
        prefilling = sorted((s for s in self._active.values() if s.prefilling), key=lambda s: s.enqueued_at)
        i = 0
        for n, size in self.plan.groups(len(decoding)):
            self._decode(decoding[i : i + n], size)
            i += n
        budget = self.prefill_chunk
        for seq in prefilling:
            if budget <= 0:
                break
            budget -= self._prefill_chunk(seq)
        self._note_batch(len(decoding))

    def _lora_on(self, seqs: list[_TSeq]) -> bool:
        return self._bank is not None and any(s.slot for s in seqs)

    def _decode(self, seqs: list[_TSeq], size: int) -> None:
        """One decode forward of ``size`` rows: the sequences', then padding rows (length 0:
        no cache write, no attention), whose logits are computed too so that every matmul,
        the output head's included, runs at the plan's size."""
        dev = self.device
        use_lora = self._lora_on(seqs)
        pad = size - len(seqs)
        step = tl.Step(
            tokens=torch.tensor([s.last_token for s in seqs] + [0] * pad, device=dev),
            positions=torch.tensor([s.n_past for s in seqs] + [0] * pad, device=dev),
            n_decode=size,
            decode_rows=[s.row for s in seqs] + [0] * pad,
            decode_lengths=[s.n_past + 1 for s in seqs] + [0] * pad,
            segments=[],
            logits_at=torch.arange(size, device=dev),
            decode_slots=torch.tensor([s.slot for s in seqs] + [0] * pad, device=dev) if use_lora else None,
            lora_targets=self._bank.targets_of(s.slot for s in seqs) if use_lora and self._bank is not None else None,
        )
        with torch.inference_mode():
            logits = tl.forward(self.w, self.cache, step, self._bank if use_lora else None)[: len(seqs)]
        self.stats["padding_rows"] += pad
        if use_lora and len({s.slot for s in seqs}) > 1:
            self.stats["mixed_adapter_steps"] += 1
        for seq in seqs:
            seq.n_past += 1
        for seq, token in zip(seqs, self._sample(logits.cpu(), seqs), strict=True):
            self._accept(seq, token)

    def _prefill_chunk(self, seq: _TSeq) -> int:
        """Feed the sequence's next prompt chunk; the last chunk samples its first token."""
        dev = self.device
        start = seq.n_past
        end = min(len(seq.tokens), (start // self.prefill_chunk + 1) * self.prefill_chunk)
        n = end - start
        last = end == len(seq.tokens)
        use_lora = self._lora_on([seq])
        step = tl.Step(
            tokens=torch.tensor(seq.tokens[start:end], device=dev),
            positions=torch.arange(start, end, device=dev),
            n_decode=0,
            decode_rows=[],
            decode_lengths=[],
            segments=[(seq.row, 0, n, start)],
            logits_at=torch.tensor([n - 1], device=dev),
            segment_slots=[seq.slot] if use_lora else None,
            lora_targets=self._bank.targets_of([seq.slot]) if use_lora and self._bank is not None else None,
        )
        with torch.inference_mode():
            logits = tl.forward(self.w, self.cache, step, self._bank if use_lora else None)
        seq.n_past = end
        self.stats["prefill_tokens"] += n
        if last:
            self._accept(seq, self._sample(logits.cpu(), [seq])[0])
        return n

    @torch.inference_mode()
    def _sample(self, logits: torch.Tensor, seqs: list[_TSeq]) -> list[int]:
        """One token per row: greedy rows take the argmax; sampled rows draw one uniform
        number from their own seeded generator and take the token where it falls in the
        cumulative distribution (after temperature, penalties and top-p)."""
        for i, seq in enumerate(seqs):
            if seq.params.logprobs is not None:  # the model's distribution, before constraints and penalties
                seq.logp = torch.log_softmax(logits[i].float(), dim=-1)
        for i, seq in enumerate(seqs):
            if seq.params.logit_bias:
                apply_logit_bias(logits[i], seq.params.logit_bias)
        for i, seq in enumerate(seqs):
            if seq.matcher is not None:
                try:
                    mask_logits(seq.matcher, logits[i])
                except PlinthError as e:
                    seq.failed = e
                self.stats["constrained_tokens"] += 1
        picks = torch.argmax(logits, dim=-1).tolist()
        sampled: list[int] = []
        for i, seq in enumerate(seqs):
            p = seq.params
            if seq.counts and (p.presence_penalty or p.frequency_penalty):
                idx = torch.tensor(list(seq.counts))
                freq = torch.tensor(list(seq.counts.values()), dtype=logits.dtype)
                logits[i, idx] -= p.presence_penalty + p.frequency_penalty * freq
                if p.temperature <= 0:
                    picks[i] = int(torch.argmax(logits[i]))
            if p.temperature > 0:
                sampled.append(i)
        if not sampled:
            return picks
        rows = logits[sampled] / torch.tensor([seqs[i].params.temperature for i in sampled]).unsqueeze(1)
        probs = torch.softmax(rows, dim=-1)
        for j, i in enumerate(sampled):
            seq = seqs[i]
            u = float(torch.rand((), generator=seq.generator))
            if seq.params.top_p < 1.0:
                sorted_p, order = torch.sort(probs[j], descending=True)
                keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < seq.params.top_p
                cdf = torch.cumsum(torch.where(keep, sorted_p, torch.zeros_like(sorted_p)), dim=-1)
                k = min(int(torch.searchsorted(cdf, u * float(cdf[-1]))), len(cdf) - 1)
                picks[i] = int(order[k])
            else:
                cdf = torch.cumsum(probs[j], dim=-1)
                picks[i] = min(int(torch.searchsorted(cdf, u * float(cdf[-1]))), len(cdf) - 1)
        return picks

    def _accept(self, seq: _TSeq, token: int) -> None:
        if seq.failed is not None:
            self._finish(seq, None, error=seq.failed)
            return
        if token in self.eos_ids:
            self._finish(seq, "stop")
            return
        if seq.matcher is not None and not seq.matcher.consume_token(token):
            err = seq.matcher.get_error() or "the token is outside the grammar"
            self._finish(seq, None, error=PlinthError(ErrorCode.INTERNAL, f"structured output failed: {err}"))
            return
        seq.last_token = token
        if seq.params.presence_penalty or seq.params.frequency_penalty:
            seq.counts[token] = seq.counts.get(token, 0) + 1
        logprob = None
        if seq.logp is not None and seq.params.logprobs is not None:
            logprob = token_logprob(self.tokenizer, seq.logp, token, seq.params.logprobs)
            seq.logp = None
        self._deliver(seq, seq.decoder.step(self.tokenizer, token), logprob)

    # -- batch invariance --------------------------------------------------------------------
    def _probe(self, size: int, at: int, seed: int, slot: int = 0, neighbour_slots: tuple[int, ...] = (0,)) -> torch.Tensor:
        """The logits of a probe row decoded at position ``at`` of a batch of ``size`` rows
        whose other rows hold random tokens (and random adapter slots from ``neighbour_slots``)."""
        gen = torch.Generator().manual_seed(seed)
        tokens = torch.randint(0, self.spec.vocab, (size,), generator=gen)
        tokens[at] = _PROBE_TOKEN
        slots = torch.tensor(neighbour_slots)[torch.randint(0, len(neighbour_slots), (size,), generator=gen)]
        slots[at] = slot
        use_lora = self._bank is not None and bool(slots.any())
        rows = [1] * size  # the neighbours share the probe cache's row 1 (what they read there does not matter)
        rows[at] = 0
        # the probe attends over the whole context, its neighbours over random lengths
        lengths = torch.randint(1, _PROBE_CONTEXT + 1, (size,), generator=gen).tolist()
        lengths[at] = _PROBE_CONTEXT
        step = tl.Step(
            tokens=tokens.to(self.device),
            positions=torch.tensor([n - 1 for n in lengths], dtype=torch.long, device=self.device),
            n_decode=size,
            decode_rows=rows,
            decode_lengths=lengths,
            segments=[],
            logits_at=torch.arange(size, device=self.device),
            decode_slots=slots.to(self.device) if use_lora else None,
            lora_targets=self._bank.targets_of(slots.tolist()) if use_lora and self._bank is not None else None,
        )
        with torch.inference_mode():
            return tl.forward(self.w, self._probe_cache, step, self._bank if use_lora else None)[at].cpu()

    def _measure(
        self, sizes: tuple[int, ...], slot: int = 0, neighbour_slots: tuple[int, ...] = (0,)
    ) -> tuple[dict[int, list[torch.Tensor]], dict[int, float]]:
        """The probe's logits at the start, middle and end of a batch of each size (twice
        alone for size 1), and the shortest forward time seen at each size."""
        probes: dict[int, list[torch.Tensor]] = {}
        seconds: dict[int, float] = {}
        for size in sizes:
            places = sorted({0, size // 2, size - 1}) if size > 1 else [0, 0]
            probes[size] = []
            for i, at in enumerate(places):
                started = time.perf_counter()
                probes[size].append(self._probe(size, at, seed=size * 31 + i, slot=slot, neighbour_slots=neighbour_slots))
                seconds[size] = min(seconds.get(size, math.inf), time.perf_counter() - started)
        return probes, seconds

    def _matmul_signatures(self, sizes: tuple[int, ...]) -> dict[int, torch.Tensor]:
        """Per size, a digest of every weight matrix applied to the same random rows in
        batches of that size. End-to-end probes see few rows: a kernel for one size may sum
        in another order than the others' (bf16 matrix-vector against matrix-matrix) and
        differ only where a float32 sum rounds to another bf16 value, rarely; this sees
        hundreds of thousands of outputs per size."""
        gen = torch.Generator().manual_seed(1)
        weights = [self.w.lm_head] + [m for lw in self.w.layers for m in (lw.qkv, lw.o, lw.gate_up, lw.down)]
        rows = max(sizes)
        inputs = {m.shape[1]: torch.randn(rows, m.shape[1], generator=gen).to(self.w.dtype).to(self.device) for m in weights}
        out: dict[int, torch.Tensor] = {}
        with torch.inference_mode():
            for size in sizes:
                h = hashlib.sha256()
                for m in weights:
                    x = inputs[m.shape[1]]
                    for i in range(0, rows, size):
                        y = torch.nn.functional.linear(x[i : i + size], m).float().cpu()
                        h.update(y.numpy().tobytes())
                out[size] = torch.tensor(list(h.digest()), dtype=torch.float32)
        return out

    def _calibrate(self) -> DecodePlan:
        """Measure which decode batch sizes give a row the same logits (see :func:`choose_plan`)."""
        started = time.monotonic()
        sizes = candidate_sizes(self.max_batch)
        probes, seconds = self._measure(sizes)
        # a size joins another's group only if every matmul agrees too, row by row
        signatures = self._matmul_signatures(sizes)
        probes = {size: [torch.cat((p, signatures[size])) for p in ps] for size, ps in probes.items()}
        plan = choose_plan(probes, seconds, self.max_batch)
        level = logging.INFO if plan.invariant and len(plan.sizes) > 1 else logging.WARNING
        log.log(
            level,
            "decode batch sizes %s of %s give a row the same logits on this CPU (%s, %d threads; measured in %.2f s)%s",
            list(plan.sizes),
            list(sizes),
            str(self.w.dtype).replace("torch.", ""),
            torch.get_num_threads(),
            time.monotonic() - started,
            "" if plan.invariant else ": the kernels are not deterministic, batched answers may differ from lone ones",
        )
        return plan

    def _recheck_with_adapters(self, slot: int) -> None:
        """Check the plan again with LoRA applied (the bank's batched matmuls are new kernels),
        keeping only the sizes that still agree; called when the bank's shapes change."""
        if not self.plan.invariant or len(self.plan.sizes) < 2:
            return
        probes, _ = self._measure(tuple(sorted({1, *self.plan.sizes})), slot=slot, neighbour_slots=(0, slot))
        plan = choose_plan(probes)
        plan = DecodePlan(sizes=tuple(s for s in plan.sizes if s in self.plan.sizes) or (1,), invariant=plan.invariant)
        if plan != self.plan:
            log.warning(
                "with LoRA adapters, decode batch sizes %s (was %s) give a row the same logits", list(plan.sizes), list(self.plan.sizes)
            )
            self.plan = plan

    # -- adapters ----------------------------------------------------------------------------
    def _ensure_adapter(self, spec: AdapterSpec) -> _Loaded:
        loaded = self._adapters.get(spec.key)
        if loaded is not None:
            loaded.last_used = time.monotonic()
            self._adapters.move_to_end(spec.key)
            return loaded
        modules, rank = read_peft_adapter(spec.path, self.spec, scale=spec.scale)
        self._evict_for(spec.size_bytes)
        reshaped = self._bank is None or rank > self._bank.rank
        if not self._free_slots:
            slots = 2 if self._bank is None else self._bank.slots * 2
            if self._bank is None:
                self._bank = tl.new_bank(self.spec, slots, rank, self.w.dtype, self.device)
            else:
                old = self._bank.slots
                self._bank = tl.grow_bank(self._bank, self.spec, slots, rank)
                slots = self._bank.slots
                self._free_slots.extend(range(slots - 1, old - 1, -1))
            if not self._free_slots:
                self._free_slots.extend(range(slots - 1, 0, -1))
        elif self._bank is not None and rank > self._bank.rank:
            self._bank = tl.grow_bank(self._bank, self.spec, self._bank.slots, rank)
        assert self._bank is not None
        slot = self._free_slots.pop()
        tl.write_adapter(self._bank, self.spec, slot, modules)
        loaded = _Loaded(key=spec.key, slot=slot, size_bytes=spec.size_bytes)
        self._adapters[spec.key] = loaded
        self.stats["adapter_loads"] += 1
        if reshaped and self._batch_invariant:
            self._recheck_with_adapters(slot)
        return loaded

    def _evict_for(self, incoming: int) -> None:
        total = sum(a.size_bytes for a in self._adapters.values())
        for key in list(self._adapters):  # oldest first
            if total + incoming <= self._adapter_budget:
                break
            ad = self._adapters[key]
            if ad.users > 0:
                continue
            del self._adapters[key]
            self._free_slots.append(ad.slot)
            total -= ad.size_bytes
            self.stats["adapter_evictions"] += 1
            log.info("evicted LoRA adapter %s (budget %d bytes)", key, self._adapter_budget)


def apply_logit_bias(row: torch.Tensor, bias: dict[int, float]) -> None:
    """Add each token's bias to its logit (one row, in place)."""
    ids = torch.tensor(list(bias), dtype=torch.long)
    row[ids] += torch.tensor(list(bias.values()), dtype=row.dtype)


def token_logprob(tokenizer: Any, logp: torch.Tensor, token: int, top: int) -> TokenLogprob:
    """``token``'s entry from a log-softmax row, with the ``top`` most likely tokens."""

    def text(t: int) -> str:
        return str(tokenizer.decode([t], skip_special_tokens=False))

    alternatives: list[tuple[str, list[int], float]] = []
    if top > 0:
        values, ids = torch.topk(logp, top)
        for v, t in zip(values.tolist(), ids.tolist(), strict=True):
            piece = text(int(t))
            alternatives.append((piece, list(piece.encode()), float(v)))
    piece = text(token)
    return TokenLogprob(token=piece, bytes=list(piece.encode()), logprob=float(logp[token]), top=alternatives)


def new_matcher(constraint: Any) -> Any:
    """A fresh matcher for one sequence from the runtime's compiled one (an llguidance.LLMatcher)."""
    if constraint.compiled is None:
        raise PlinthError(ErrorCode.INTERNAL, "the constraint was not compiled for this runtime")
    return constraint.compiled.deep_copy()


def mask_logits(matcher: Any, row: torch.Tensor) -> None:
    """Set the logits of tokens the matcher does not allow now to -inf (one row, in place)."""
    words = (row.shape[0] + 31) // 32
    bits = np.zeros(words, dtype=np.int32)
    matcher.unsafe_compute_mask_ptr(bits.ctypes.data, bits.nbytes)
    allowed = np.unpackbits(bits.view(np.uint8), bitorder="little")[: row.shape[0]]
    if not allowed.any():  # the matcher is in an error state
        raise PlinthError(ErrorCode.INTERNAL, f"structured output failed: {matcher.get_error() or 'no token is allowed'}")
    row.masked_fill_(torch.from_numpy(allowed == 0), float("-inf"))


def read_peft_adapter(
    path: Path, spec: tl.LlamaSpec, scale: float = 1.0
) -> tuple[dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor, float]], int]:
    """A PEFT LoRA directory as ``{(layer, module): (A, B, scale)}`` and its largest rank.

    Only safetensors weights are read. Adapters this engine cannot apply exactly (DoRA, LoRA
    on embeddings or the output head, shapes that do not fit the base) are refused with a
    clear error instead of being served wrong."""
    from safetensors.torch import load_file

    try:
        cfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        tensors = load_file(str(path / "adapter_model.safetensors"))
    except (OSError, ValueError) as e:
        raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"cannot read the LoRA adapter in {path}: {e}") from None
    except Exception as e:  # SafetensorError
        raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"cannot read the LoRA adapter in {path}: {e}") from None
    if cfg.get("use_dora"):
        raise PlinthError(ErrorCode.UNSUPPORTED, "DoRA adapters are not supported by the batching engine")
    r_default = int(cfg.get("r", 8))
    alpha_default = float(cfg.get("lora_alpha", r_default))
    rank_pattern = cfg.get("rank_pattern") or {}
    alpha_pattern = cfg.get("alpha_pattern") or {}
    rslora = bool(cfg.get("use_rslora"))
    outs = tl.out_sizes(spec)
    modules: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor, float]] = {}
    rank = 1
    for key, a in tensors.items():
        if ".lora_A." not in key:
            if ".lora_B." in key:
                continue
            raise PlinthError(ErrorCode.UNSUPPORTED, f"LoRA adapter tensor {key!r} is not supported (only lora_A/lora_B on linear layers)")
        prefix = key.split(".lora_A.")[0]
        b = tensors.get(key.replace(".lora_A.", ".lora_B."))
        name = prefix.rsplit(".", 1)[-1]
        if b is None or ".layers." not in prefix or name not in tl.LORA_MODULES:
            raise PlinthError(ErrorCode.UNSUPPORTED, f"LoRA adapter module {prefix!r} is not supported by the batching engine")
        layer = int(prefix.split(".layers.")[1].split(".")[0])
        target = next(t for t, mods in tl.FUSED_TARGETS.items() if name in mods)
        out = outs[target][tl.FUSED_TARGETS[target].index(name)]
        r = a.shape[0]
        if layer >= spec.n_layers or a.shape[1] != tl.in_size(spec, target) or tuple(b.shape) != (out, r):
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"LoRA adapter {path.name}: {prefix} has shapes A{tuple(a.shape)} B{tuple(b.shape)}, which do not fit this base model",
            )
        pattern_key = next((k for k in rank_pattern if prefix.endswith(k)), None)
        alpha = float(alpha_pattern.get(pattern_key, alpha_default)) if pattern_key else alpha_default
        r_cfg = int(rank_pattern.get(pattern_key, r_default)) if pattern_key else r_default
        s = alpha / math.sqrt(r_cfg) if rslora else alpha / r_cfg
        modules[(layer, name)] = (a, b, s * scale)
        rank = max(rank, r)
    if not modules:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"LoRA adapter in {path} has no lora_A/lora_B tensors")
    return modules, rank
