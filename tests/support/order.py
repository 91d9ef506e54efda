"""The order in which the test files are handed to pytest-xdist's workers: the longest first.

make test runs two xdist workers that take whole files (``--dist loadfile``). xdist hands the
files out in collection order only with ``--no-loadscope-reorder``; by default it sorts them by
their number of tests, most first, which puts the few-test end-to-end files that take minutes
(the monitoring walkthrough, the closed loop, the OpenAPI fuzz) at the very end: one worker runs
them while the other has nothing left. Handing the longest out first (longest processing time
first) leaves only short files for the end, so the two workers finish close together.

:data:`LONGEST_FIRST` comes from ``--durations`` of single files run alone; a file missing from
it keeps its collection order after them. tests/unit/test_test_order.py checks every entry names
a test file that exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

LONGEST_FIRST = (
    "tests/integration/test_monitoring_walkthrough.py",
    "tests/integration/test_closed_loop.py",
    "tests/integration/test_openapi_fuzz.py",
    "tests/integration/test_tuning_api.py",
    "tests/integration/test_tools.py",
    "tests/integration/test_real_clients.py",
    "tests/integration/test_clients_litellm.py",
    "tests/integration/test_clients_langchain.py",
    "tests/integration/test_clients_agents.py",
    "tests/unit/runtimes/test_torch_batching.py",
    "tests/integration/test_projects_isolation.py",
    "tests/unit/tuning/test_recipes.py",
    "tests/integration/test_pipelines_api.py",
    "tests/integration/test_explain_api.py",
    "tests/integration/test_assistant_eval.py",
    "tests/integration/test_clients_instructor.py",
    "tests/integration/test_responses_api.py",
    "tests/unit/runtimes/test_tools_torch.py",
    "tests/integration/test_ray_jobs.py",
    "tests/integration/test_drift_api.py",
    "tests/integration/test_openai_api.py",
    "tests/integration/test_jobs_recovery.py",
)


def longest_first(items: Sequence[pytest.Item], root: Path) -> list[pytest.Item]:
    """``items`` with those of :data:`LONGEST_FIRST`'s files first, in its order; a stable sort,
    so the order inside each file and among the other files is kept."""
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}

    def key(item: pytest.Item) -> int:
        try:
            return rank.get(item.path.relative_to(root).as_posix(), len(rank))
        except ValueError:  # a file outside the repository
            return len(rank)

    return sorted(items, key=key)
