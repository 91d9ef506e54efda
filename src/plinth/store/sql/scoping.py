"""Every ORM statement on a project-scoped table runs in the scope of the call.

The scope comes from :data:`plinth.domain.projects.current_scope` (set by the API for each
request from its principal, by the job process from its job, by the CLI from ``--project``).
Two session events of the store's sessionmaker enforce it, so no query of the store can
forget it:

- ``do_orm_execute``: in a project scope, a SELECT on a :class:`~plinth.store.schema.base.
  Scoped` table sees the project's rows and the shared ones (project ``""``), and an ORM
  UPDATE or DELETE touches the project's rows only. The system scope (the server's own
  background work: the job scheduler, the usage writer, retention sweeps) is not filtered;
  store methods that look a row up by name name the scope's project themselves
  (:meth:`SqlBase._project`), so a name means the same row in either scope.
- ``before_flush``: a new row without a project gets the scope's; outside the system scope
  a row of another project, or a shared one, can be neither added, changed nor deleted; shared
  rows are added only in the system scope.

A call without a scope runs in the system scope of the default project, unless the store is
``strict`` (the server's is): then it is a bug and fails.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria

from plinth.domain.projects import SHARED, SYSTEM, StoreScope, current_scope
from plinth.errors import ErrorCode, PlinthError
from plinth.store.schema.base import Scoped

#: execution option of a SELECT that counts references across every project (shared blobs:
#: the artifact store keeps one copy of content that several projects may hold)
ALL_PROJECTS = "plinth_all_projects"


def scope_of_call(strict: bool) -> StoreScope:
    value = current_scope.get()
    if value is not None:
        return value
    if strict:
        raise PlinthError(ErrorCode.INTERNAL, "a metadata store call ran outside any project scope (a bug: please report it)")
    return SYSTEM


def install(sessions: sessionmaker[Session], strict: bool) -> None:
    """Attach the scoping events to the sessions ``sessions`` makes."""

    @event.listens_for(sessions, "do_orm_execute")
    def _filter(state: ORMExecuteState) -> None:
        if state.is_select and (state.is_column_load or state.is_relationship_load):
            return
        if not (state.is_select or state.is_update or state.is_delete):
            return
        sc = scope_of_call(strict)
        if sc.everything or (state.is_select and state.execution_options.get(ALL_PROJECTS)):
            return
        if state.is_select:
            visible = sc.visible
            criteria = with_loader_criteria(Scoped, lambda cls: cls.project.in_(visible), include_aliases=True)
        else:
            own = sc.project
            criteria = with_loader_criteria(Scoped, lambda cls: cls.project == own, include_aliases=True)
        state.statement = state.statement.options(criteria)

    @event.listens_for(sessions, "before_flush")
    def _check(session: Session, _context: Any, _instances: Any) -> None:
        sc = scope_of_call(strict)
        for obj in session.new:
            if not isinstance(obj, Scoped):
                continue
            project = getattr(obj, "project", None)
            if project is None:
                obj.project = sc.project
            elif project == SHARED:
                if not (sc.everything and type(obj).__shareable__):
                    raise PlinthError(ErrorCode.PERMISSION_DENIED, f"only the server can add shared {type(obj).__tablename__}")  # type: ignore[attr-defined]
            elif project != sc.project and not sc.everything:
                raise PlinthError(ErrorCode.PERMISSION_DENIED, f"a row of project {project!r} cannot be added from project {sc.project!r}")
        if sc.everything:
            return
        for obj in list(session.dirty) + list(session.deleted):
            if isinstance(obj, Scoped) and getattr(obj, "project", None) != sc.project:
                what = type(obj).__tablename__  # type: ignore[attr-defined]
                raise PlinthError(ErrorCode.PERMISSION_DENIED, f"shared {what} are read-only for project {sc.project!r}")
