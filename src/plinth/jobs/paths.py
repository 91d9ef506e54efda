"""Where a job's files live: ``$PLINTH_HOME/jobs/<job id>/`` (checkpoint, process output)."""

from __future__ import annotations

import shutil
from pathlib import Path

from plinth.config import Settings
from plinth.domain.jobs import JOB_ID_RE
from plinth.errors import ErrorCode, PlinthError


def job_dir(settings: Settings, job_id: str) -> Path:
    if not JOB_ID_RE.match(job_id or ""):  # never build a path from anything else
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid job id {job_id!r}", param="job_id")
    return settings.home / "jobs" / job_id


def checkpoint_dir(settings: Settings, job_id: str) -> Path:
    """Persistent across attempts, preemptions and restarts; removed with the job."""
    return job_dir(settings, job_id) / "checkpoint"


def output_path(settings: Settings, job_id: str, attempt: int) -> Path:
    """stdout and stderr of one attempt's process."""
    return job_dir(settings, job_id) / f"attempt-{attempt}.out"


def remove_job_files(settings: Settings, job_id: str) -> None:
    shutil.rmtree(job_dir(settings, job_id), ignore_errors=True)
