"""Usage summaries and feedback.

Every ``/v1`` chat and text completion request leaves one usage record (written by
:class:`plinth.usage.writer.UsageWriter`): the key, the deployment, revision and model version
that answered, tokens, latency and outcome. :meth:`UsageService.summary` groups them;
:meth:`UsageService.feedback` stores a rating of a response against the revision and version
that answered it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from plinth.domain.auth import Principal, Scope
from plinth.domain.deployments import USAGE_GROUPS, Feedback, UsageRecord
from plinth.domain.projects import current_project
from plinth.errors import ErrorCode, PlinthError
from plinth.store import MetadataStore
from plinth.usage.writer import UsageWriter

log = logging.getLogger("plinth.usage")

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MAX_COMMENT = 4000
RESPONSE_ID_RE = re.compile(r"^(chatcmpl|cmpl)-[0-9a-f]{32}$")
_MANAGERS = (Scope.MANAGE,)  # may rate any response (admin implies manage)
RATINGS = {"positive": 1, "up": 1, "good": 1, "neutral": 0, "negative": -1, "down": -1, "bad": -1}


def parse_duration(text: str, param: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w``."""
    m = _DURATION_RE.match(str(text).strip().lower())
    if m is None:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid duration {text!r} for {param}: use e.g. 90s, 15m, 24h, 7d", param=param)
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_time(text: str | None, param: str, *, now: datetime | None = None) -> datetime | None:
    """An ISO time, or a duration meaning that long ago (``1h``)."""
    if text is None or text == "":
        return None
    now = now or datetime.now(UTC)
    if _DURATION_RE.match(str(text).strip().lower()):
        return now - parse_duration(text, param)
    try:
        t = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST, f"invalid time {text!r} for {param}: use ISO 8601 or a duration such as 24h", param=param
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse_rating(value: Any) -> int:
    if isinstance(value, bool):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "rating must be -1, 0, 1 or positive/neutral/negative", param="rating")
    if isinstance(value, int) and value in (-1, 0, 1):
        return value
    if isinstance(value, str) and value.strip().lower() in RATINGS:
        return RATINGS[value.strip().lower()]
    raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid rating {value!r}: use -1, 0, 1 or positive, neutral, negative", param="rating")


class UsageService:
    def __init__(self, store: MetadataStore, writer: UsageWriter, on_feedback: Callable[[tuple[str, str]], None] | None = None) -> None:
        self.store = store
        self.writer = writer
        self.on_feedback = on_feedback
        #: told of every stored rating (the request log records it on its entry)
        self.rated: list[Callable[[Feedback], None]] = []

    def summary(
        self,
        *,
        group_by: list[str] | tuple[str, ...] = ("deployment", "revision"),
        since: str | datetime | None = "24h",
        until: str | datetime | None = None,
        bucket: str | None = None,
        key: str | None = None,
        deployment: str | None = None,
        revision: int | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        groups = tuple(dict.fromkeys(g.strip() for g in group_by if g.strip()))
        for g in groups:
            if g not in USAGE_GROUPS:
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST, f"cannot group usage by {g!r}; use {', '.join(USAGE_GROUPS)}", param="group_by"
                )
        t0 = since if isinstance(since, datetime) or since is None else parse_time(since, "since")
        t1 = until if isinstance(until, datetime) or until is None else parse_time(until, "until")
        bucket_s = None
        if bucket:
            bucket_s = int(parse_duration(bucket, "bucket").total_seconds())
            if bucket_s < 60:
                raise PlinthError(ErrorCode.INVALID_REQUEST, "bucket must be at least 1m", param="bucket")
        rows = self.store.usage_summary(
            group_by=groups,
            since=t0,
            until=t1,
            bucket_s=bucket_s,
            filters={"key_id": key, "deployment": deployment, "revision": revision, "model": model},
        )
        totals = {
            k: sum(r[k] for r in rows) for k in ("requests", "errors", "blocked", "prompt_tokens", "completion_tokens", "total_tokens")
        }
        return {
            "group_by": list(groups),
            "since": t0.isoformat() if t0 else None,
            "until": t1.isoformat() if t1 else None,
            "bucket_s": bucket_s,
            "rows": rows,
            "totals": totals,
        }

    def record(self, response_id: str) -> UsageRecord | None:
        """The usage record of a response, waiting briefly for this process's writer."""
        found = self.store.find_usage(response_id)
        if found is None:
            self.writer.flush(timeout=2.0)
            found = self.store.find_usage(response_id)
        deadline = time.monotonic() + 1.0
        while found is None and time.monotonic() < deadline:  # another process's writer may lag
            time.sleep(0.1)
            found = self.store.find_usage(response_id)
        return found

    def feedback(self, response_id: str, rating: Any, comment: str = "", *, principal: Principal | None = None) -> Feedback:
        if not RESPONSE_ID_RE.match(response_id or ""):
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"invalid response id {response_id!r}: use the id of a /v1 response (chatcmpl-... or cmpl-...)",
                param="response_id",
            )
        value = parse_rating(rating)
        comment = comment or ""
        if len(comment) > _MAX_COMMENT:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"comment has {len(comment)} characters; at most {_MAX_COMMENT}", param="comment")
        rec = self.record(response_id)
        if rec is None:
            raise PlinthError(
                ErrorCode.NOT_FOUND, f"response {response_id!r} does not exist (or its usage has been pruned)", param="response_id"
            )
        key = principal.key if principal is not None else None
        if principal is not None and key is not None and rec.key_id != key.id and not any(principal.allows(s) for s in _MANAGERS):
            raise PlinthError(ErrorCode.PERMISSION_DENIED, f"response {response_id!r} was made with another API key", param="response_id")
        fb = self.store.add_feedback(
            Feedback(
                response_id=response_id,
                rating=value,
                comment=comment,
                key_id=key.id if key is not None else None,
                deployment=rec.deployment,
                revision=rec.revision,
                model_version=rec.model_version or rec.served_model,
                served_model=rec.served_model,
            )
        )
        if rec.deployment and self.on_feedback is not None:
            self.on_feedback((current_project(), rec.deployment))
        for listener in self.rated:
            try:
                listener(fb)
            except Exception:  # the rating is stored; a listener's failure must not refuse it
                log.exception("a feedback listener failed")
        return fb

    def list_feedback(
        self, *, deployment: str | None = None, revision: int | None = None, response_id: str | None = None, limit: int = 100
    ) -> list[Feedback]:
        return self.store.list_feedback(deployment=deployment, revision=revision, response_id=response_id, limit=limit)
