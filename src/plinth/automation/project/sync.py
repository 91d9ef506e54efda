"""GitOps (ADR 0101): follow a local Git repository and apply the project folder of each new
commit. The git CLI is run as a subprocess; each commit's tree is read with ``git archive``
into a private temp folder (the working copy is never touched, so a dirty checkout or another
branch checked out does not matter). Every sync is an audit entry ``project.sync`` (target type
``repository``, target the repository's path) with the commit; the changes it applies carry the
commit too (``project.apply`` entries, ``details.commit``). The last synced commit is read back
from those entries, so a restarted ``plinth sync`` carries on where it was."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plinth.automation.project import engine
from plinth.automation.project.kinds import ProjectContext
from plinth.errors import ErrorCode, PlinthError

SYNC_ACTION = "project.sync"
GIT_TIMEOUT_S = 60


def _git(repo: Path, *args: str) -> bytes:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=GIT_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise PlinthError(ErrorCode.UNSUPPORTED, "git is not installed (plinth sync runs the git command line)") from None
    except subprocess.TimeoutExpired:
        raise PlinthError(ErrorCode.REQUEST_TIMEOUT, f"git {' '.join(args)} took more than {GIT_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"git {' '.join(args)} in {str(repo)!r} failed: {proc.stderr.decode('utf-8', 'replace').strip()[:500]}",
            param="repo",
        )
    return proc.stdout


def resolve(repo: Path, rev: str) -> str:
    """The commit id ``rev`` (a branch, tag or commit) names."""
    if rev.startswith("-"):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid revision {rev!r}", param="revision")
    return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()


@dataclass
class SyncResult:
    commit: str
    previous: str | None
    plan: engine.Plan | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.plan and self.plan.changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "previous": self.previous,
            "changes": [c.as_dict() for c in self.plan.changes] if self.plan else [],
            "summary": self.plan.summary() if self.plan else None,
            "error": self.error,
        }


def last_synced(ctx: ProjectContext, repo: Path) -> str | None:
    """The commit the latest sync of ``repo`` applied (None before the first)."""
    entries = ctx.services.audit.list(action=SYNC_ACTION, target_type="repository", target=str(repo.resolve()), limit=1)
    return str((entries[0].details or {}).get("commit")) if entries else None


def sync_once(
    ctx: ProjectContext, repo: Path, *, rev: str = "HEAD", path: str = ".", prune: bool = True, progress: Any = None
) -> SyncResult:
    """Plan the project folder ``path`` of the commit ``rev`` names against the live state and
    apply what differs (a new commit, or drift: a live change made by hand since). ``prune``:
    delete what an earlier apply made and the commit no longer has (GitOps: the repository is
    the truth)."""
    repo = repo.resolve()
    commit = resolve(repo, rev)
    previous = last_synced(ctx, repo)
    result = SyncResult(commit=commit, previous=previous)
    with tempfile.TemporaryDirectory(prefix="plinth-sync-") as tmp:
        root = Path(tmp)
        with tarfile.open(fileobj=io.BytesIO(_git(repo, "archive", "--format=tar", commit)), mode="r:") as tar:
            tar.extractall(root, filter="data")
        folder = (root / path).resolve()
        if folder != root and root not in folder.parents:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"{path!r} is outside the repository", param="path")
        ctx.base_dir = folder
        ctx.confined_to = root  # a commit's files may name only files of that commit
        try:
            files = engine.project_files(folder)
            result.plan = engine.apply(ctx, files, prune=prune, progress=progress, details={"commit": commit, "repository": str(repo)})
        except PlinthError as e:
            result.error = e.message
    ctx.services.audit.record(
        ctx.actor,
        SYNC_ACTION,
        "repository",
        str(repo),
        details={
            "commit": commit,
            "previous": previous,
            "revision": rev,
            "path": path,
            "summary": result.plan.summary() if result.plan else None,
            "error": result.error,
        },
    )
    return result
