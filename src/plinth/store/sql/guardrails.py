"""The guardrails area in SQL: policies, versions, events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from plinth.domain.guardrails import Action, Direction, GuardrailEvent, PolicySummary, PolicyVersion
from plinth.domain.projects import SHARED
from plinth.errors import ErrorCode, PlinthError
from plinth.store.schema.guardrails import GuardrailEventRow, GuardrailPolicyRow, GuardrailPolicyVersionRow
from plinth.store.sql.common import RefusedValue, SqlBase, db_reason, is_unique_violation
from plinth.store.sql.engine import rowcount


class GuardrailsSql(SqlBase):
    """:class:`plinth.store.base_guardrails.GuardrailsStore` on SQL."""

    def list_guardrail_policies(self) -> list[PolicySummary]:
        with self._session() as s:
            rows = s.scalars(select(GuardrailPolicyRow).where(self._visible(GuardrailPolicyRow)).order_by(GuardrailPolicyRow.name))
            seen: dict[str, PolicySummary] = {}
            for r in rows:  # a project's own policy hides a shared one of the same name
                if r.name not in seen or r.project != SHARED:
                    seen[r.name] = _summary(r)
            return list(seen.values())

    def _policy_head(self, s: Any, name: str, *, for_update: bool = False) -> GuardrailPolicyRow | None:
        """The project's own policy ``name``, else the shared one."""
        for project in dict.fromkeys(self._scope().visible):
            head = s.get(GuardrailPolicyRow, (project, name), with_for_update=for_update)
            if head is not None:
                return head  # type: ignore[no-any-return]
        return None

    def get_guardrail_policy(self, name: str, version: int | None = None) -> PolicyVersion | None:
        with self._session() as s:
            head = self._policy_head(s, name)
            if head is None:
                return None
            row = s.get(GuardrailPolicyVersionRow, (head.project, name, head.latest_version if version is None else version))
            return None if row is None else _version(row)

    def list_guardrail_policy_versions(self, name: str) -> list[PolicyVersion]:
        with self._session() as s:
            head = self._policy_head(s, name)
            if head is None:
                return []
            rows = s.scalars(
                select(GuardrailPolicyVersionRow)
                .where(GuardrailPolicyVersionRow.project == head.project, GuardrailPolicyVersionRow.policy == name)
                .order_by(GuardrailPolicyVersionRow.version)
            )
            return [_version(r) for r in rows]

    def put_guardrail_policy(
        self, name: str, spec: dict[str, Any], digest: str, description: str = "", *, builtin: bool = False
    ) -> tuple[PolicyVersion, bool]:
        for attempt in range(3):
            try:
                return self._put_policy(name, spec, digest, description, builtin)
            except IntegrityError as e:
                # two writers created the same policy (or version) at once: the loser retries
                # and sees the winner's row
                if not is_unique_violation(e) or attempt == 2:
                    raise PlinthError(ErrorCode.CONFLICT, f"policy {name!r} was changed concurrently; try again", retry_after=1.0) from None
            except RefusedValue as e:
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"policy {name!r} cannot be stored: {db_reason(e)}") from None
        raise AssertionError("unreachable")

    def _put_policy(self, name: str, spec: dict[str, Any], digest: str, description: str, builtin: bool) -> tuple[PolicyVersion, bool]:
        now = datetime.now(UTC)
        # built-in policies are shared; a project's are its own
        project = SHARED if builtin else self._project()
        with self._session(write=True) as s:
            head = s.get(GuardrailPolicyRow, (project, name), with_for_update=True)
            if head is None and not builtin and s.get(GuardrailPolicyRow, (SHARED, name)) is not None:
                raise PlinthError(
                    ErrorCode.PERMISSION_DENIED,
                    f"policy {name!r} is built in and shared by every project; create a policy of another name",
                    param="name",
                )
            if head is not None:
                latest = s.get(GuardrailPolicyVersionRow, (project, name, head.latest_version))
                if latest is not None and latest.digest == digest:
                    return _version(latest), False
                version = head.latest_version + 1
                head.latest_version = version
                head.description = description
                head.updated_at = now
                head.builtin = head.builtin or builtin
            else:
                version = 1
                s.add(
                    GuardrailPolicyRow(
                        project=project,
                        name=name,
                        description=description,
                        latest_version=1,
                        builtin=builtin,
                        created_at=now,
                        updated_at=now,
                    )
                )
                s.flush()
            row = GuardrailPolicyVersionRow(
                project=project, policy=name, version=version, spec=spec, digest=digest, description=description, created_at=now
            )
            s.add(row)
            s.flush()
            return _version(row), True

    def delete_guardrail_policy(self, name: str) -> bool:
        project = self._project()
        with self._session(write=True) as s:
            s.execute(
                delete(GuardrailPolicyVersionRow).where(
                    GuardrailPolicyVersionRow.project == project, GuardrailPolicyVersionRow.policy == name
                )
            )
            result = s.execute(delete(GuardrailPolicyRow).where(GuardrailPolicyRow.project == project, GuardrailPolicyRow.name == name))
            return bool(rowcount(result))

    def add_guardrail_events(self, events: Sequence[GuardrailEvent]) -> None:
        if not events:
            return
        now = datetime.now(UTC)
        default = self._project()
        rows = [
            {
                "project": e.project if e.project is not None else default,
                "request_id": e.request_id[:64],
                "model_id": e.model_id[:300],
                "policy": e.policy[:100],
                "policy_version": e.policy_version,
                "direction": e.direction.value,
                "detector": e.detector[:40],
                "kind": e.kind[:40],
                "label": e.label[:40],
                "action": e.action.value,
                "score": float(e.score),
                "span_start": e.start,
                "span_end": e.end,
                "choice": e.choice,
                "reason": e.reason[:300],
                "created_at": e.created_at or now,
            }
            for e in events
        ]
        with self._session(write=True) as s:
            s.execute(insert(GuardrailEventRow), rows)

    def list_guardrail_events(
        self,
        *,
        model_id: str | None = None,
        policy: str | None = None,
        request_id: str | None = None,
        detector: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[GuardrailEvent]:
        q = select(GuardrailEventRow).where(self._visible(GuardrailEventRow))
        if model_id is not None:
            q = q.where(GuardrailEventRow.model_id == model_id)
        if policy is not None:
            q = q.where(GuardrailEventRow.policy == policy)
        if request_id is not None:
            q = q.where(GuardrailEventRow.request_id == request_id)
        if detector is not None:
            q = q.where(GuardrailEventRow.detector == detector)
        if before_id is not None:
            q = q.where(GuardrailEventRow.id < before_id)
        q = q.order_by(GuardrailEventRow.id.desc()).limit(max(1, min(limit, 1000)))
        with self._session() as s:
            return [_event(r) for r in s.scalars(q)]


def _summary(r: GuardrailPolicyRow) -> PolicySummary:
    return PolicySummary(
        name=r.name,
        latest_version=r.latest_version,
        description=r.description,
        builtin=r.builtin,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _version(r: GuardrailPolicyVersionRow) -> PolicyVersion:
    return PolicyVersion(name=r.policy, version=r.version, spec=r.spec, digest=r.digest, description=r.description, created_at=r.created_at)


def _event(r: GuardrailEventRow) -> GuardrailEvent:
    return GuardrailEvent(
        id=r.id,
        request_id=r.request_id,
        model_id=r.model_id,
        policy=r.policy,
        policy_version=r.policy_version,
        direction=Direction(r.direction),
        detector=r.detector,
        kind=r.kind,
        label=r.label,
        action=Action(r.action),
        score=r.score,
        start=r.span_start,
        end=r.span_end,
        choice=r.choice,
        reason=r.reason,
        created_at=r.created_at,
    )
