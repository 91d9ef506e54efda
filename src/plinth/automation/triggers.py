"""Triggers (ADR 0103): what starts a pipeline's runs, and a record of every decision.

Kinds:

- ``schedule``: ``spec.cron`` a 5-field cron expression (minute hour day-of-month month
  day-of-week, UTC; ``*``, lists, ranges, steps, names of months and days); it fires once for
  the newest due time since it last looked (missed times while the server was down fire once);
- ``dataset`` / ``knowledge_base``: ``spec.name``; fires when the newest version changes
  (a new dataset version, a new knowledge base version); the run gets ``${trigger.version}``;
- ``alert``: the alert action ``pipeline`` (:mod:`plinth.oversight.actions`) starts the
  pipeline through :class:`TriggerService` (the :class:`~plinth.oversight.actions.
  PipelineStarter`); ``spec.rule`` optionally names the one alert rule it listens to;
- ``manual``: fired by a user (``plinth triggers fire``).

Every trigger may have ``when`` (a condition over ``${trigger.*}``, as for steps), a
``cooldown_s`` (no second run sooner) and de-duplicates by a key (the schedule time, the data
version, the alert's rule and start): each decision (fired, ``cooldown``, ``duplicate``,
``condition false``, ``disabled``) is a trigger event.
"""

from __future__ import annotations

import builtins
import calendar
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from plinth.automation.pipeline_spec import Problem, Unresolved, evaluate_condition, invalid, parse_condition
from plinth.automation.pipelines import Clock, PipelineService, utcnow
from plinth.domain.pipelines import PIPELINE_NAME_RE, Trigger, TriggerEvent, TriggerKind
from plinth.domain.projects import project_scope, system_scope
from plinth.errors import ErrorCode, PlinthError
from plinth.store import MetadataStore

log = logging.getLogger("plinth.triggers")

MAX_COOLDOWN_S = 365 * 86400.0


# -- cron ----------------------------------------------------------------------------------------------
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {d.lower(): (i + 1) % 7 for i, d in enumerate(calendar.day_abbr)}  # mon=1 ... sun=0


@dataclass(frozen=True)
class Cron:
    """A parsed 5-field cron expression. Day of month and day of week: when both are
    restricted a day matches either (as in Vixie cron)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_any: bool
    weekdays_any: bool

    def matches(self, at: datetime) -> bool:
        return at.minute in self.minutes and at.hour in self.hours and at.month in self.months and self._day_ok(at)

    def next_after(self, at: datetime) -> datetime:
        """The first matching minute strictly after ``at`` (within 5 years)."""
        t = at.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = t + timedelta(days=366 * 5)
        while t < end:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_ok(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if self.matches(t):
                return t
            t += timedelta(minutes=1)
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"cron {self.text!r} never fires", param="spec.cron")

    def _day_ok(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_any and self.weekdays_any:
            return True
        if self.days_any:
            return dow
        if self.weekdays_any:
            return dom
        return dom or dow

    def last_due(self, after: datetime, until: datetime) -> datetime | None:
        """The newest matching minute in (after, until], or None."""
        found = None
        t = self.next_after(after)
        while t <= until:
            found = t
            t = self.next_after(t)
        return found


def _field(text: str, lo: int, hi: int, names: Mapping[str, int], what: str) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"{what}: bad step {step_text!r}")
            step = int(step_text)
        if part == "*":
            a, b = lo, hi
        elif "-" in part:
            x, y = part.split("-", 1)
            a, b = _value(x, names, lo, hi, what), _value(y, names, lo, hi, what)
            if a > b:
                raise ValueError(f"{what}: range {part!r} runs backwards")
        else:
            a = _value(part, names, lo, hi, what)
            b = hi if step > 1 else a
        values.update(range(a, b + 1, step))
    return frozenset(values), text == "*"


def _value(text: str, names: Mapping[str, int], lo: int, hi: int, what: str) -> int:
    t = text.lower()
    if t in names:
        return names[t]
    if not t.isdigit():
        raise ValueError(f"{what}: {text!r} is not a number")
    v = int(t)
    if what == "day of week" and v == 7:
        v = 0
    if not lo <= v <= hi:
        raise ValueError(f"{what}: {v} is outside {lo}-{hi}")
    return v


def parse_cron(text: str) -> Cron:
    """Parse a 5-field cron expression (ValueError naming the bad field)."""
    if not isinstance(text, str):
        raise ValueError("a cron expression is a string like '*/15 * * * *'")
    aliases = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *"}
    fields = aliases.get(text.strip(), text).split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has 5 fields (minute hour day month weekday); got {len(fields)}")
    minutes, _ = _field(fields[0], 0, 59, {}, "minute")
    hours, _ = _field(fields[1], 0, 23, {}, "hour")
    days, days_any = _field(fields[2], 1, 31, {}, "day of month")
    months, _ = _field(fields[3], 1, 12, _MONTHS, "month")
    weekdays, weekdays_any = _field(fields[4], 0, 7, _DAYS, "day of week")
    weekdays = frozenset(0 if d == 7 else d for d in weekdays)
    return Cron(text, minutes, hours, days, months, weekdays, days_any, weekdays_any)


# -- the service ---------------------------------------------------------------------------------------
_DOC_FIELDS = {"name", "pipeline", "kind", "spec", "params", "cooldown_s", "enabled", "when", "apiVersion", "metadata"}


class TriggerService:
    """Triggers: define, fire, and the periodic checks of schedules and new data. It is also
    the :class:`plinth.oversight.actions.PipelineStarter` of the alert action ``pipeline``."""

    def __init__(
        self,
        store: MetadataStore,
        pipelines: PipelineService,
        *,
        version_of: Callable[[TriggerKind, str], int | None] | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.pipelines = pipelines
        #: the newest version of a dataset or knowledge base (None when it does not exist)
        self.version_of = version_of
        self.clock = clock

    # -- definitions ---------------------------------------------------------------------------
    def parse(self, doc: Any, *, check_pipeline: bool = True) -> Trigger:
        """A trigger definition validated (every problem at once); ``check_pipeline``: the
        pipeline must exist (a project folder may define it beside the trigger)."""
        problems: list[Problem] = []
        if not isinstance(doc, dict):
            raise invalid([Problem("trigger", "must be an object")], "trigger")
        if "metadata" in doc and isinstance(doc.get("spec"), dict) and "pipeline" in doc["spec"]:  # a project file
            meta = doc["metadata"] if isinstance(doc["metadata"], dict) else {}
            doc = {"name": meta.get("name"), **doc["spec"]}
        for k in sorted(set(doc) - _DOC_FIELDS):
            problems.append(Problem(k, f"unknown field {k!r}; known: name, pipeline, kind, spec, params, cooldown_s, enabled, when"))
        name, pipeline = doc.get("name"), doc.get("pipeline")
        if not isinstance(name, str) or not PIPELINE_NAME_RE.match(name):
            problems.append(Problem("name", f"invalid trigger name {name!r}: 1-63 lowercase letters, digits, '.', '_' or '-'"))
        if not isinstance(pipeline, str) or not PIPELINE_NAME_RE.match(pipeline):
            problems.append(Problem("pipeline", f"invalid pipeline name {pipeline!r}"))
        elif check_pipeline:
            try:
                self.pipelines.get(pipeline)
            except PlinthError as e:
                if e.code is not ErrorCode.NOT_FOUND:
                    raise
                problems.append(Problem("pipeline", f"pipeline {pipeline!r} does not exist (apply it first)"))
        kind_text = doc.get("kind", "manual")
        try:
            kind = TriggerKind(kind_text)
        except ValueError:
            problems.append(Problem("kind", f"unknown trigger kind {kind_text!r}; known: {', '.join(k.value for k in TriggerKind)}"))
            kind = TriggerKind.MANUAL
        spec = doc.get("spec", {}) or {}
        if not isinstance(spec, dict):
            problems.append(Problem("spec", "must be an object"))
            spec = {}
        spec = dict(spec)
        if "when" in doc:
            spec["when"] = doc["when"]
        if kind is TriggerKind.SCHEDULE:
            try:
                parse_cron(spec.get("cron"))  # type: ignore[arg-type]
            except ValueError as e:
                problems.append(Problem("spec.cron", str(e)))
        if kind in (TriggerKind.DATASET, TriggerKind.KNOWLEDGE_BASE) and not isinstance(spec.get("name"), str):
            problems.append(Problem("spec.name", f"a {kind.value} trigger names the {kind.value.replace('_', ' ')} it watches"))
        if kind is TriggerKind.ALERT and spec.get("rule") is not None and not isinstance(spec.get("rule"), str):
            problems.append(Problem("spec.rule", "must be an alert rule name"))
        when = spec.get("when")
        if when is not None:
            try:
                if not isinstance(when, str):
                    raise ValueError("must be a condition (a string)")
                _, refs = parse_condition(when)
                for ref in refs:
                    if not ref.startswith("trigger."):
                        raise ValueError(f"a trigger's condition refers to ${{trigger.*}} only, not ${{{ref}}}")
            except ValueError as e:
                problems.append(Problem("when", str(e)))
        params = doc.get("params", {}) or {}
        if not isinstance(params, dict):
            problems.append(Problem("params", "must be an object"))
            params = {}
        cooldown = doc.get("cooldown_s", 0)
        if isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)) or not 0 <= cooldown <= MAX_COOLDOWN_S:
            problems.append(Problem("cooldown_s", f"must be a number of seconds from 0 to {int(MAX_COOLDOWN_S)}"))
            cooldown = 0
        enabled = doc.get("enabled", True)
        if not isinstance(enabled, bool):
            problems.append(Problem("enabled", "must be true or false"))
            enabled = True
        if problems:
            raise invalid(problems, "trigger")
        assert isinstance(name, str) and isinstance(pipeline, str)
        return Trigger(name=name, pipeline=pipeline, kind=kind, spec=spec, params=dict(params), cooldown_s=float(cooldown), enabled=enabled)

    def apply(self, doc: Any) -> Trigger:
        trigger = self.parse(doc)
        stored = self.store.put_trigger(trigger)
        if trigger.kind in (TriggerKind.DATASET, TriggerKind.KNOWLEDGE_BASE) and "seen" not in stored.state and self.version_of is not None:
            # what exists when the trigger is created is not new
            seen = self.version_of(trigger.kind, str(trigger.spec["name"]))
            stored = self.store.set_trigger_state(trigger.name, {**stored.state, "seen": seen})
        if trigger.kind is TriggerKind.SCHEDULE and "checked_at" not in stored.state:
            stored = self.store.set_trigger_state(trigger.name, {**stored.state, "checked_at": self.clock().isoformat()})
        return stored

    def get(self, name: str) -> Trigger:
        return self.store.get_trigger(name)

    def list(self, *, pipeline: str | None = None) -> builtins.list[Trigger]:
        return self.store.list_triggers(pipeline=pipeline)

    def delete(self, name: str) -> Trigger:
        return self.store.delete_trigger(name)

    def events(self, trigger: str | None = None, *, limit: int = 100) -> builtins.list[TriggerEvent]:
        if not 1 <= limit <= 1000:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "limit must be from 1 to 1000", param="limit")
        if trigger is not None:
            self.get(trigger)
        return self.store.list_trigger_events(trigger=trigger, limit=limit)

    # -- firing --------------------------------------------------------------------------------
    def fire(
        self, trigger: Trigger, *, key: str, reason: str, details: Mapping[str, Any] | None = None, now: datetime | None = None
    ) -> TriggerEvent:
        """Decide whether ``trigger`` starts a run now; the recorded event says why (not)."""
        at = now or self.clock()
        info = dict(details or {})
        state = dict(trigger.state)

        def record(fired: bool, why: str, run_id: str | None = None) -> TriggerEvent:
            return self.store.add_trigger_event(
                TriggerEvent(trigger=trigger.name, at=at, fired=fired, reason=why, key=key, run_id=run_id, details=info)
            )

        if not trigger.enabled:
            return record(False, "disabled")
        if key and key == state.get("last_key"):
            return record(False, f"duplicate: {key} already started run {state.get('last_run')}")
        when = trigger.spec.get("when")
        if when:
            try:
                ok = evaluate_condition(str(when), {"trigger": info})
            except Unresolved as e:
                return record(False, f"condition false: {e}")
            if not ok:
                return record(False, f"condition false: {when}")
        last = state.get("last_fired_at")
        if last and trigger.cooldown_s > 0:
            since = (at - datetime.fromisoformat(last)).total_seconds()
            if since < trigger.cooldown_s:
                return record(False, f"cooldown: fired {since:.0f} s ago, cooldown {trigger.cooldown_s:g} s")
        try:
            run = self.pipelines.start(
                trigger.pipeline,
                trigger.params,
                reason=f"trigger {trigger.name} ({trigger.kind.value}): {reason}",
                trigger={"name": trigger.name, "kind": trigger.kind.value, **info},
            )
        except PlinthError as e:
            return record(False, f"error: {e.message}")
        state.update(last_fired_at=at.isoformat(), last_key=key, last_run=run.id)
        self.store.set_trigger_state(trigger.name, state)
        return record(True, reason, run.id)

    def fire_manual(self, name: str, *, reason: str = "fired by hand") -> TriggerEvent:
        trigger = self.get(name)
        at = self.clock()
        return self.fire(trigger, key=f"manual:{at.isoformat()}", reason=reason, details={"by": "manual"}, now=at)

    def start_pipeline(self, pipeline: str, *, reason: str, trigger: dict[str, Any]) -> str:
        """The alert action ``pipeline``: fire the pipeline's alert triggers (each applies its
        cooldown, de-duplication and condition); with none, start a run directly."""
        labels: dict[str, Any] = trigger["labels"] if isinstance(trigger.get("labels"), dict) else {}
        rule = str(labels.get("alertname") or trigger.get("rule") or "")
        key = f"alert:{rule}:{trigger.get('starts_at') or ''}"
        triggers = [
            t
            for t in self.store.list_triggers(pipeline=pipeline, kind=TriggerKind.ALERT.value)
            if not t.spec.get("rule") or t.spec.get("rule") == rule
        ]
        if not triggers:
            return self.pipelines.start(pipeline, reason=reason, trigger={"kind": "alert", **trigger}).id
        started: list[str] = []
        notes: list[str] = []
        for t in triggers:
            event = self.fire(t, key=key, reason=reason, details=trigger)
            if event.run_id:
                started.append(event.run_id)
            else:
                notes.append(f"{t.name}: {event.reason}")
        if started:
            return ", ".join(started)
        raise PlinthError(ErrorCode.CONFLICT, f"pipeline {pipeline!r} not started ({'; '.join(notes)})")

    # -- periodic checks -------------------------------------------------------------------------
    def check(self, trigger: Trigger, *, now: datetime | None = None) -> TriggerEvent | None:
        """Look at one schedule or new-data trigger; the event when it was due."""
        at = now or self.clock()
        if trigger.kind is TriggerKind.SCHEDULE:
            cron = parse_cron(str(trigger.spec.get("cron")))
            checked = trigger.state.get("checked_at")
            since = datetime.fromisoformat(checked) if checked else at - timedelta(minutes=1)
            due = cron.last_due(since, at)
            trigger = self.store.set_trigger_state(trigger.name, {**trigger.state, "checked_at": at.isoformat()})
            if due is None:
                return None
            return self.fire(
                trigger,
                key=f"schedule:{due.isoformat()}",
                reason=f"schedule {cron.text} due at {due.isoformat()}",
                details={"due": due.isoformat()},
                now=at,
            )
        if trigger.kind in (TriggerKind.DATASET, TriggerKind.KNOWLEDGE_BASE) and self.version_of is not None:
            name = str(trigger.spec.get("name"))
            version = self.version_of(trigger.kind, name)
            if version is None or version == trigger.state.get("seen"):
                return None
            trigger = self.store.set_trigger_state(trigger.name, {**trigger.state, "seen": version})
            what = "dataset" if trigger.kind is TriggerKind.DATASET else "knowledge base"
            return self.fire(
                trigger,
                key=f"{trigger.kind.value}:{name}@{version}",
                reason=f"new {what} version {name}@{version}",
                details={"name": name, "version": version, "ref": f"{name}@{version}"},
                now=at,
            )
        return None

    def run_once(self, now: datetime | None = None) -> builtins.list[TriggerEvent]:
        """Check every project's enabled schedule and new-data triggers."""
        at = now or self.clock()
        with system_scope():
            triggers = [
                t
                for t in self.store.list_triggers(enabled=True, every_project=True)
                if t.kind in (TriggerKind.SCHEDULE, TriggerKind.DATASET, TriggerKind.KNOWLEDGE_BASE)
            ]
        out: list[TriggerEvent] = []
        for t in triggers:
            with project_scope(t.project):
                try:
                    event = self.check(t, now=at)
                except PlinthError as e:
                    log.warning("trigger %s could not be checked: %s", t.name, e.message)
                    continue
                if event is not None:
                    out.append(event)
        return out


def data_versions(services: Any) -> Callable[[TriggerKind, str], int | None]:
    """The newest version of a dataset or knowledge base, through the services."""

    def version_of(kind: TriggerKind, name: str) -> int | None:
        try:
            if kind is TriggerKind.DATASET:
                return int(services.datasets.dataset(name).latest_version)
            if kind is TriggerKind.KNOWLEDGE_BASE and services.knowledge is not None:
                return int(services.knowledge.get(name).current_version)
        except PlinthError as e:
            if e.code is ErrorCode.NOT_FOUND:
                return None
            raise
        return None

    return version_of


# The Pipeline and Trigger kinds of project files register when pipelines are wired (the project
# registry's KIND_MODULES may name this module too).
import plinth.automation.pipeline_kinds  # noqa: E402, F401
