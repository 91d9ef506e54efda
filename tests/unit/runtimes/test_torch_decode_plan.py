"""How the torch engine picks its decode batch sizes from measured probe logits (no model:
the measurements are given, so every outcome a CPU can produce is covered on any CPU)."""

from __future__ import annotations

import pytest
import torch

from plinth.runtimes.torch_engine import DecodePlan, candidate_sizes, choose_plan

A = torch.tensor([1.0, 2.0, 3.0])
B = torch.tensor([1.0, 2.0, 3.0000002])  # one ulp-scale difference is a different answer
C = torch.tensor([0.5, 2.0, 3.0])


def test_groups_pad_to_the_smallest_size_that_holds_the_rows() -> None:
    plan = DecodePlan(sizes=(1, 2, 4, 8), invariant=True)
    assert plan.groups(1) == [(1, 1)]
    assert plan.groups(3) == [(3, 4)]
    assert plan.groups(8) == [(8, 8)]
    assert plan.groups(13) == [(8, 8), (5, 8)]
    assert plan.groups(0) == []


def test_groups_without_size_one_pad_a_lone_row() -> None:
    plan = DecodePlan(sizes=(4, 16), invariant=True)
    assert plan.groups(1) == [(1, 4)]
    assert plan.groups(5) == [(5, 16)]
    assert plan.groups(40) == [(16, 16), (16, 16), (8, 16)]


def test_groups_without_invariance_run_rows_at_their_own_count() -> None:
    plan = DecodePlan(sizes=(), invariant=False)
    assert plan.groups(5) == [(5, 5)]
    assert plan.groups(70) == [(32, 32), (32, 32), (6, 6)]


def test_candidate_sizes_stop_at_the_first_that_holds_the_batch() -> None:
    assert candidate_sizes(1) == (1,)
    assert candidate_sizes(6) == (1, 2, 4, 8)
    assert candidate_sizes(8) == (1, 2, 4, 8)
    assert candidate_sizes(100) == (1, 2, 4, 8, 16, 32)


def test_all_sizes_agreeing_make_one_plan() -> None:
    probes = {1: [A, A], 2: [A, A], 4: [A, A, A], 8: [A, A, A]}
    assert choose_plan(probes) == DecodePlan(sizes=(1, 2, 4, 8), invariant=True)


def test_a_size_whose_rows_depend_on_position_is_never_used() -> None:
    # at size 8 the probe got other bits at another position in the batch
    probes = {1: [A, A], 2: [A, A], 4: [A, A, A], 8: [A, B, A]}
    assert choose_plan(probes).sizes == (1, 2, 4)


def test_sizes_are_grouped_by_identical_logits() -> None:
    # fp32 on MKL: one row alone takes another kernel than several rows
    probes = {1: [A, A], 2: [B, B], 4: [B, B, B], 8: [C, C, C], 16: [B, B, B]}
    plan = choose_plan(probes)
    assert plan.sizes == (2, 4, 16) and plan.invariant
    # every size in the plan gives the probe the same logits
    assert len({tuple(probes[s][0].tolist()) for s in plan.sizes}) == 1


def test_measured_times_pick_the_cheapest_group() -> None:
    probes = {1: [A, A], 2: [A, A], 4: [B, B, B], 8: [B, B, B]}
    # one row alone is cheap, but decoding up to 8 rows two at a time costs more than padding to 8
    seconds = {1: 0.010, 2: 0.011, 4: 0.012, 8: 0.013}
    assert choose_plan(probes, seconds, max_batch=8).sizes == (4, 8)
    # with batches of at most 2, the group holding size 1 is cheaper
    assert choose_plan(probes, seconds, max_batch=2).sizes == (1, 2)


def test_non_deterministic_kernels_fall_back_to_rows_alone() -> None:
    probes = {1: [A, B], 2: [A, A]}
    assert choose_plan(probes) == DecodePlan(sizes=(1,), invariant=False)


def test_size_one_is_required() -> None:
    with pytest.raises(ValueError):
        choose_plan({2: [A, A]})
