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

LoRA adapters are applied per token: every decode row may use another adapter (batched
matmuls over the rows' gathered adapter slots), a prompt chunk uses its request's adapter.
Adapters load on first use from PEFT directories (safetensors only) and are evicted
least-recently-used beyond a byte budget; an adapter in use is never evicted.

Batch invariance: a greedy answer in a batch equals the answer served alone. Attention is
computed row by row over each row's own positions; prompt chunks are their own forwards with
fixed boundaries, so a prompt is computed the same way whatever else is running; and the
decode batch is split into groups of at most ``DECODE_GROUP`` rows, the largest batch for
which this CPU's bf16 matmul kernels (oneDNN) were measured to give every row the result it
gets alone. See docs/adr/0050.
"""

from __future__ import annotations

import collections
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

import torch

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes.base import SamplingParams
from plinth.runtimes.batching import BASE, AdapterSpec, BatchEngine, Sequence, Sink
from plinth.runtimes import torch_llama as tl

log = logging.getLogger("plinth.runtimes.torch")

#: decode rows per forward; bf16 oneDNN matmuls were measured batch-invariant up to 32 rows
DECODE_GROUP = 32


@dataclass
class _TSeq(Sequence):
    row: int = -1
    slot: int = 0  # adapter slot in the bank (0: none)
    generator: torch.Generator | None = None
    counts: dict[int, int] = field(default_factory=dict)
    decoder: Any = None  # tokenizers.decoders.DecodeStream


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
        name: str = "model",
    ) -> None:
        """``load`` makes the weights; it runs on the engine thread, which then does all of
        the model's tensor work (see :meth:`_on_thread_start`). Raises what ``load`` raised."""
        super().__init__(max_batch=max_batch, n_ctx_per_seq=n_ctx_per_seq, thread_name=f"torch-batch-{name[:16]}")
        self._load = load
        self._threads = threads
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
        return {**super().describe(), "device": self.device, "dtype": str(self.w.dtype).replace("torch.", ""), **self.memory_bytes()}

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
        for i in range(0, len(decoding), DECODE_GROUP):
            self._decode(decoding[i : i + DECODE_GROUP])
        budget = self.prefill_chunk
        for seq in prefilling:
            if budget <= 0:
                break
            budget -= self._prefill_chunk(seq)
        self._note_batch(len(decoding))

    def _lora_on(self, seqs: list[_TSeq]) -> bool:
        return self._bank is not None and any(s.slot for s in seqs)

    def _decode(self, seqs: list[_TSeq]) -> None:
        dev = self.device
        use_lora = self._lora_on(seqs)
        step = tl.Step(
            tokens=torch.tensor([s.last_token for s in seqs], device=dev),
            positions=torch.tensor([s.n_past for s in seqs], device=dev),
            n_decode=len(seqs),
            decode_rows=[s.row for s in seqs],
            decode_lengths=[s.n_past + 1 for s in seqs],
            segments=[],
            logits_at=torch.arange(len(seqs), device=dev),
            decode_slots=torch.tensor([s.slot for s in seqs], device=dev) if use_lora else None,
            lora_targets=self._bank.targets_of(s.slot for s in seqs) if use_lora and self._bank is not None else None,
        )
        with torch.inference_mode():
            logits = tl.forward(self.w, self.cache, step, self._bank if use_lora else None)
        if use_lora and len({s.slot for s in seqs}) > 1:
            self.stats["mixed_adapter_steps"] += 1
        for seq in seqs:
            seq.n_past += 1
        for seq, token in zip(seqs, self._sample(logits.cpu(), seqs)):
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
        if token in self.eos_ids:
            self._finish(seq, "stop")
            return
        seq.last_token = token
        if seq.params.presence_penalty or seq.params.frequency_penalty:
            seq.counts[token] = seq.counts.get(token, 0) + 1
        self._deliver(seq, seq.decoder.step(self.tokenizer, token))

    # -- adapters ----------------------------------------------------------------------------
    def _ensure_adapter(self, spec: AdapterSpec) -> _Loaded:
        loaded = self._adapters.get(spec.key)
        if loaded is not None:
            loaded.last_used = time.monotonic()
            self._adapters.move_to_end(spec.key)
            return loaded
        modules, rank = read_peft_adapter(spec.path, self.spec, scale=spec.scale)
        self._evict_for(spec.size_bytes)
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
