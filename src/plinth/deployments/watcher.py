"""The rollout watcher: judges each canary's rules and rolls a breaching canary back.

It is told (:meth:`RolloutWatcher.poke`) when new usage records or feedback of a deployment
are in the store, and judges that deployment on its own thread at most once per
``interval_s`` (a poke inside the interval is judged when the interval ends, so the last
requests are never left unjudged). A breach rolls the canary back with the reason (the rule,
both values, the window), which records an ``auto_rollback`` event, an audit entry and
``plinth_deployment_rollbacks_total{trigger="auto"}``. In team mode every server process
watches; the compare-and-set on the deployment lets exactly one of them roll back.
"""

from __future__ import annotations

import logging
import threading
import time

from plinth.deployments.service import AUTO_ACTOR, DeploymentService
from plinth.domain.deployments import RuleCheck
from plinth.domain.projects import current_project, project_scope
from plinth.errors import ErrorCode, PlinthError

log = logging.getLogger("plinth.deployments")


class RolloutWatcher:
    def __init__(self, service: DeploymentService, *, interval_s: float = 1.0) -> None:
        self.service = service
        self.interval_s = interval_s
        self._due: dict[tuple[str, str], float] = {}  # (project, deployment) -> when it may be judged next
        self._last: dict[tuple[str, str], float] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = False
        self.checks = 0

    def poke(self, *names: str | tuple[str, str]) -> None:
        """Judge these deployments soon: ``(project, name)`` pairs, or names in the project of
        the call."""
        now = time.monotonic()
        with self._cond:
            for item in names:
                name = item if isinstance(item, tuple) else (current_project(), item)
                if name in self._due:
                    continue
                self._due[name] = max(now, self._last.get(name, 0.0) + self.interval_s)
            self._cond.notify()
            if self._thread is None and not self._stop:
                self._thread = threading.Thread(target=self._run, name="plinth-rollout-watcher", daemon=True)
                self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    now = time.monotonic()
                    ready = [n for n, t in self._due.items() if t <= now]
                    if ready:
                        for n in ready:
                            del self._due[n]
                            self._last[n] = now
                        break
                    wait = min(self._due.values()) - now if self._due else None
                    self._cond.wait(wait)
                if self._stop:
                    return
            for project, name in ready:
                try:
                    with project_scope(project):
                        self.check(name)
                except Exception:
                    log.exception("judging the rollout rules of %s (project %s) failed", name, project)

    def check(self, name: str) -> list[RuleCheck]:
        """Judge ``name``'s canary now; roll it back on a breach. Returns the checks."""
        self.checks += 1
        dep = self.service.store.find_deployment(name)
        if dep is None or dep.canary_revision is None:
            return []
        _, checks = self.service.rule_checks(dep)
        breached = [c for c in checks if c.breached]
        if not breached or not dep.auto_rollback:
            return checks
        first = breached[0]
        reason = "; ".join(c.message() for c in breached) + f" (window since {self.service.window_since(dep):%H:%M:%S} UTC)"
        try:
            self.service.rollback(
                name,
                actor=AUTO_ACTOR,
                reason=reason,
                trigger="auto",
                rule=first.rule.metric.value,
                expected_generation=dep.generation,
                details={"breaches": [c.public_dict() for c in breached]},
            )
        except PlinthError as e:
            if e.code is not ErrorCode.CONFLICT:  # someone else changed it first: nothing to do
                raise
        return checks
