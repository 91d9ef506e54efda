"""The compliance report of one deployment over a period (ADR 0095).

:func:`build_report` gathers, from what plinth stores in the caller's project, for ``[since,
until)``:

- which revisions and model versions answered (usage records), with what each revision
  serves: models, lineage of registry versions (base model, dataset version, training run),
  knowledge bases, guardrail policies; the deployment's changes (canary, promote, rollback);
- what fired: alert rules on the deployment and their state changes, guardrail findings by
  detector and action;
- drift measurements (``drift_runs``), bias reports (``bias_reports``) of the deployment and
  of the model versions it served, feedback by revision, quality signals from the request log.

:func:`render_html` writes it as one self-contained HTML page: inline CSS (with print rules,
so the browser's "print to PDF" gives the paper copy) and inline SVG charts, no script, no
external asset; every string that came from a person or a model is escaped.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from plinth import __version__
from plinth.domain.projects import current_project
from plinth.errors import ErrorCode, PlinthError
from plinth.oversight.quality import quality_signals
from plinth.store import MetadataStore
from plinth.usage.service import parse_time

#: the longest period one report covers
MAX_PERIOD = timedelta(days=366)
MAX_EVENTS = 500
MAX_FEEDBACK = 100_000


def period_bucket_s(since: datetime, until: datetime) -> int:
    """Buckets of the usage chart: hours up to 3 days, else days."""
    return 3600 if until - since <= timedelta(days=3) else 86400


def report_over(store: MetadataStore, registry: Any, deployment: str, since: str | None, until: str | None) -> dict[str, Any]:
    """The report of ``deployment`` over ``[since, until)`` given as ISO times or durations back
    from now (defaults: the last 30 days), with lineage from ``registry`` (may be None)."""
    now = datetime.now(UTC)
    start = parse_time(since or "30d", "since", now=now) or now
    end = parse_time(until, "until", now=now) or now
    resolve = registry.resolve_version if registry is not None else None
    return build_report(store, deployment, since=start, until=end, resolve_version=resolve, now=now)


def build_report(
    store: MetadataStore,
    deployment: str,
    *,
    since: datetime,
    until: datetime,
    resolve_version: Callable[[str], Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The report of ``deployment`` over ``[since, until)`` as a JSON-able dict."""
    if until <= since:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "the period is empty: 'until' must be after 'since'", param="until")
    if until - since > MAX_PERIOD:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"a report covers at most {MAX_PERIOD.days} days", param="since")
    dep = store.get_deployment(deployment)
    revisions = store.list_revisions(deployment)
    usage = store.usage_summary(group_by=("revision", "model_version"), since=since, until=until, filters={"deployment": deployment})
    series = store.usage_summary(
        group_by=("outcome",), since=since, until=until, bucket_s=period_bucket_s(since, until), filters={"deployment": deployment}
    )
    answered = {int(r["revision"]) for r in usage if r.get("revision") is not None}
    versions = sorted({str(r["model_version"]) for r in usage if r.get("model_version")})
    rev_out = []
    for rev in revisions:
        if rev.number not in answered and rev.number not in (dep.stable_revision, dep.canary_revision):
            continue
        targets = []
        for t in rev.targets:
            entry = t.to_dict()
            entry["lineage"] = _lineage(t.version or t.served, resolve_version)
            targets.append(entry)
        rev_out.append(
            {
                "number": rev.number,
                "role": "stable" if rev.number == dep.stable_revision else "canary" if rev.number == dep.canary_revision else "earlier",
                "answered": rev.number in answered,
                "note": rev.note,
                "created_at": _iso(rev.created_at),
                "created_by": rev.created_by,
                "targets": targets,
            }
        )
    changes = [e.public_dict() for e in store.list_deployment_events(deployment, limit=MAX_EVENTS) if _within(e.at, since, until)]
    rules = store.list_alert_rules(deployment=deployment)
    alert_events = []
    for rule in rules:
        for ev in store.list_alert_events(rule=rule.name, since=since, until=until, limit=MAX_EVENTS):
            alert_events.append({**ev.public_dict(), "severity": rule.severity.value})
    alert_events.sort(key=lambda e: e["at"] or "", reverse=True)
    drift = store.drift_points(deployment, since=since, until=until)
    bias = store.bias_points([deployment, *versions], since=since, until=until)
    feedback = [
        f for f in store.list_feedback(deployment=deployment, limit=MAX_FEEDBACK) if _within(f.at, since, until) and f.rating in (-1, 0, 1)
    ]
    by_rev: dict[int | None, Counter[int]] = {}
    for f in feedback:
        by_rev.setdefault(f.revision, Counter())[f.rating] += 1
    try:
        quality: dict[str, Any] | None = quality_signals(store, deployment, until - since, now=until)
    except PlinthError:
        quality = None
    return {
        "generated_at": (now or datetime.now(UTC)).isoformat(),
        "plinth_version": __version__,
        "project": current_project(),
        "deployment": {
            "name": dep.name,
            "description": dep.description,
            "stable_revision": dep.stable_revision,
            "canary_revision": dep.canary_revision,
            "canary_percent": dep.canary_percent,
            "created_at": _iso(dep.created_at),
        },
        "period": {"since": since.isoformat(), "until": until.isoformat()},
        "usage": {
            "by_revision": usage,
            "totals": {k: sum(int(r.get(k) or 0) for r in usage) for k in ("requests", "errors", "blocked", "total_tokens")},
            "bucket_s": period_bucket_s(since, until),
            "series": series,
        },
        "model_versions": versions,
        "revisions": rev_out,
        "changes": changes,
        "alerts": {
            "rules": [r.public_dict() for r in rules],
            "events": alert_events,
            "fired": sum(1 for e in alert_events if e["to_state"] == "firing"),
        },
        "guardrails": store.guardrail_event_counts(deployment, since=since, until=until),
        "drift": [
            {
                "at": p.at.isoformat(),
                "revision": p.revision,
                "adapter": p.adapter,
                "score": p.score,
                "drifted": p.drifted,
                "n_recent": p.n_recent,
                "n_reference": p.n_reference,
                "reference": p.reference,
            }
            for p in drift
        ],
        "bias": [
            {"id": b.id, "at": b.at.isoformat(), "target": b.target, "suite": b.suite, "passed": b.passed, "gaps": _gaps(b.results)}
            for b in bias
        ],
        "feedback": {
            "ratings": len(feedback),
            "by_revision": [
                {"revision": rev, "positive": c[1], "neutral": c[0], "negative": c[-1]}
                for rev, c in sorted(by_rev.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
            ],
        },
        "quality": quality,
    }


def _lineage(version: str, resolve_version: Callable[[str], Any] | None) -> dict[str, Any] | None:
    if resolve_version is None or not version:
        return None
    try:
        mv = resolve_version(version)
    except PlinthError:
        return None
    if mv is None:
        return None
    return {
        "registry_version": f"{mv.name}@{mv.version}",
        "kind": mv.kind,
        "base_model": mv.base_model,
        "dataset": mv.dataset,
        "run_id": mv.run_id,
        "artifact_digest": mv.artifact_digest,
        "metrics": {k: v for k, v in (mv.metrics or {}).items() if isinstance(v, int | float) and not isinstance(v, bool)},
    }


def _gaps(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The judged metrics of a bias report's attributes (``attributes.NAME.metrics.METRIC``):
    attribute, metric, value, threshold, passed; failures first."""
    out: list[dict[str, Any]] = []
    attrs = results.get("attributes") if isinstance(results, dict) else None
    if not isinstance(attrs, dict):
        return out
    for attr, a in attrs.items():
        metrics = a.get("metrics") if isinstance(a, dict) else None
        if not isinstance(metrics, dict):
            continue
        for metric, m in metrics.items():
            if isinstance(m, dict) and m.get("passed") is not None:
                out.append(
                    {
                        "attribute": str(attr),
                        "metric": str(metric),
                        "value": m.get("value"),
                        "threshold": m.get("threshold"),
                        "passed": bool(m["passed"]),
                    }
                )
    out.sort(key=lambda g: g["passed"])
    return out[:50]


def _within(t: datetime | None, since: datetime, until: datetime) -> bool:
    return t is not None and since <= t < until


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


# -- HTML ------------------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24;max-width:60rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .2rem}h2{font-size:1.15rem;border-bottom:1px solid #ccd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #e3e6ea;
vertical-align:top}th{background:#f3f5f7}td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#5b6470}
.bad{color:#b3261e;font-weight:600}.ok{color:#1e7b34}.box{border:1px solid #ccd;border-radius:4px;padding:.5rem 1rem}
svg{max-width:100%;height:auto}code{font-size:.9em}
@media print{body{margin:0;max-width:none;font-size:11px}h2{break-after:avoid}table,svg,.box{break-inside:avoid}
a{color:inherit;text-decoration:none}@page{margin:1.5cm}}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:.{digits}g}"
    return _e(v)


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None, empty: str = "none in this period") -> str:
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def bar_chart(points: list[tuple[str, float]], *, title: str, width: int = 720, height: int = 180) -> str:
    """An inline SVG bar chart of (label, value) (labels escaped)."""
    if not points:
        return ""
    top = max(v for _, v in points) or 1.0
    pad_l, pad_b, pad_t = 48, 28, 18
    w = (width - pad_l - 8) / len(points)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
        f'<text x="{pad_l}" y="12" font-size="11" fill="#5b6470">{_e(title)} (max {_num(top)})</text>',
        f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - 8}" y2="{height - pad_b}" stroke="#99a"/>',
    ]
    step = max(1, len(points) // 8)
    for i, (label, v) in enumerate(points):
        h = (height - pad_b - pad_t) * (v / top)
        x = pad_l + i * w
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{height - pad_b - h:.1f}" width="{max(w - 2, 1):.1f}" height="{h:.1f}" fill="#4a78b5">'
            f"<title>{_e(label)}: {_num(v)}</title></rect>"
        )
        if i % step == 0:
            parts.append(f'<text x="{x + 1:.1f}" y="{height - 10}" font-size="9" fill="#5b6470">{_e(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(points: list[tuple[str, float, bool]], *, title: str, width: int = 720, height: int = 180) -> str:
    """An inline SVG line chart of (label, value, flagged): flagged points in red."""
    if not points:
        return ""
    values = [v for _, v, _ in points]
    lo, hi = min(0.0, *values), max(values)
    span = (hi - lo) or 1.0
    pad_l, pad_b, pad_t = 48, 28, 18
    step_x = (width - pad_l - 16) / max(1, len(points) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return pad_l + i * step_x, height - pad_b - (height - pad_b - pad_t) * ((v - lo) / span)

    path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(xy(i, v) for i, (_, v, _) in enumerate(points)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
        f'<text x="{pad_l}" y="12" font-size="11" fill="#5b6470">{_e(title)} (range {_num(lo)} to {_num(hi)})</text>',
        f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - 8}" y2="{height - pad_b}" stroke="#99a"/>',
        f'<path d="{path}" fill="none" stroke="#4a78b5" stroke-width="2"/>',
    ]
    for i, (label, v, flagged) in enumerate(points):
        x, y = xy(i, v)
        colour = "#b3261e" if flagged else "#4a78b5"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"><title>{_e(label)}: {_num(v)}</title></circle>')
    parts.append(f'<text x="{pad_l}" y="{height - 10}" font-size="9" fill="#5b6470">{_e(points[0][0])}</text>')
    parts.append(f'<text x="{width - 8}" y="{height - 10}" font-size="9" fill="#5b6470" text-anchor="end">{_e(points[-1][0])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: dict[str, Any]) -> str:
    """The report as one printable, self-contained HTML page."""
    d = report["deployment"]
    p = report["period"]
    u = report["usage"]
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Compliance report: {_e(d['name'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Compliance report: {_e(d['name'])}</h1>",
        (
            f'<p class="muted">Project {_e(report["project"])} &middot; period {_e(p["since"][:19])} to {_e(p["until"][:19])} UTC '
            f"&middot; generated {_e(report['generated_at'][:19])} UTC by plinth {_e(report['plinth_version'])}</p>"
        ),
        f'<div class="box"><p>{_e(d["description"]) or "<span class=muted>(no description)</span>"}</p>',
        f"<p>Stable revision {_num(d['stable_revision'])}"
        + (f", canary revision {_num(d['canary_revision'])} at {_num(d['canary_percent'])}%" if d["canary_revision"] else ", no canary")
        + f". {_num(u['totals']['requests'])} requests, {_num(u['totals']['errors'])} errors, "
        f"{_num(u['totals']['blocked'])} blocked by guardrails, {_num(report['alerts']['fired'])} alerts fired, "
        f"{sum(1 for x in report['drift'] if x['drifted'])} drift findings, "
        f"{sum(1 for b in report['bias'] if not b['passed'])} failed bias reports in the period.</p></div>",
    ]
    # 1. who answered
    out.append("<h2>1. Which versions answered</h2>")
    out.append(
        _table(
            ["revision", "model version", "requests", "errors", "blocked", "tokens"],
            [
                [
                    _num(r.get("revision")),
                    _e(r.get("model_version") or "-"),
                    _num(r.get("requests")),
                    _num(r.get("errors")),
                    _num(r.get("blocked")),
                    _num(r.get("total_tokens")),
                ]
                for r in u["by_revision"]
            ],
            {2, 3, 4, 5},
            "no requests in this period",
        )
    )
    buckets: dict[str, float] = {}
    for r in u["series"]:
        label = str(r.get("bucket") or "")[: 13 if u["bucket_s"] < 86400 else 10]
        buckets[label] = buckets.get(label, 0.0) + float(r.get("requests") or 0)
    out.append(bar_chart(sorted(buckets.items()), title=f"requests per {'hour' if u['bucket_s'] < 86400 else 'day'}"))
    # 2. with which data and guardrails
    out.append("<h2>2. Revisions: models, data and guardrails</h2>")
    rows = []
    for rev in report["revisions"]:
        for t in rev["targets"]:
            lin = t.get("lineage") or {}
            data = ", ".join(x for x in (lin.get("dataset"), lin.get("base_model") and f"base {lin['base_model']}") if x)
            rows.append(
                [
                    f"{_num(rev['number'])} ({_e(rev['role'])})",
                    _e(t.get("version") or t.get("model")),
                    _e(data or "-") + (f'<br><span class="muted">run {_e(lin["run_id"])}</span>' if lin.get("run_id") else ""),
                    _e(t.get("knowledge_base") or "-"),
                    _e(t.get("guardrail_policy") or "-"),
                    _num(t.get("weight")),
                ]
            )
    out.append(_table(["revision", "model version", "training data (lineage)", "knowledge base", "guardrail policy", "weight"], rows, {5}))
    out.append("<h3>Changes to the deployment</h3>")
    out.append(
        _table(
            ["at", "change", "revision", "by", "reason"],
            [
                [_e((c.get("at") or "")[:19]), _e(c.get("kind")), _num(c.get("revision")), _e(c.get("actor")), _e(c.get("reason") or "")]
                for c in report["changes"]
            ],
        )
    )
    # 3. what fired
    out.append("<h2>3. What fired</h2><h3>Alerts</h3>")
    out.append(
        _table(
            ["at", "rule", "severity", "change", "value", "actions"],
            [
                [
                    _e((e.get("at") or "")[:19]),
                    _e(e["rule"]),
                    _e(e["severity"]),
                    f"{_e(e['from_state'])} &rarr; <span class={'bad' if e['to_state'] == 'firing' else 'ok'}>{_e(e['to_state'])}</span>",
                    _num(e.get("value")),
                    _e(", ".join(f"{x.get('kind')}: {x.get('message')}" for x in e.get("delivered", [])) or "-"),
                ]
                for e in report["alerts"]["events"]
            ],
        )
    )
    out.append(f'<p class="muted">{len(report["alerts"]["rules"])} alert rules watch this deployment.</p>')
    out.append("<h3>Guardrail findings</h3>")
    out.append(
        _table(
            ["detector", "label", "action", "direction", "findings", "requests"],
            [
                [_e(g["detector"]), _e(g["label"]), _e(g["action"]), _e(g["direction"]), _num(g["count"]), _num(g["requests"])]
                for g in report["guardrails"]
            ],
            {4, 5},
        )
    )
    # 4. drift
    out.append("<h2>4. Drift of what members ask</h2>")
    out.append(
        line_chart([(x["at"][:16], float(x["score"]), bool(x["drifted"])) for x in report["drift"]], title="drift score (red: drift found)")
    )
    out.append(
        _table(
            ["at", "revision", "score", "drifted", "recent", "reference"],
            [
                [
                    _e(x["at"][:19]),
                    _num(x["revision"]),
                    _num(x["score"]),
                    "<span class=bad>yes</span>" if x["drifted"] else "no",
                    _num(x["n_recent"]),
                    _e(_reference(x["reference"])),
                ]
                for x in report["drift"]
            ],
            {2, 4},
            "no drift measurement in this period",
        )
    )
    # 5. bias
    out.append("<h2>5. Bias probes</h2>")
    out.append(
        _table(
            ["at", "target", "suite", "result", "gaps"],
            [
                [
                    _e(b["at"][:19]),
                    _e(b["target"]),
                    _e(b["suite"]),
                    "<span class=ok>passed</span>" if b["passed"] else "<span class=bad>failed</span>",
                    _e("; ".join(_gap_text(g) for g in b["gaps"]) or "-"),
                ]
                for b in report["bias"]
            ],
            empty="no bias report in this period",
        )
    )
    # 6. feedback and quality
    fb = report["feedback"]
    out.append("<h2>6. Feedback and quality</h2>")
    out.append(
        _table(
            ["revision", "positive", "neutral", "negative", "negative share"],
            [
                [
                    _num(r["revision"]),
                    _num(r["positive"]),
                    _num(r["neutral"]),
                    _num(r["negative"]),
                    _num(r["negative"] / max(1, r["positive"] + r["neutral"] + r["negative"])),
                ]
                for r in fb["by_revision"]
            ],
            {1, 2, 3, 4},
            "no ratings in this period",
        )
    )
    q = report.get("quality") or {}
    overall = q.get("overall") or {}
    if overall:
        keys = [k for k in sorted(overall) if isinstance(overall[k], int | float) and not isinstance(overall[k], bool)]
        out.append("<h3>Quality signals (request log)</h3>")
        out.append(_table(["signal", "value"], [[_e(k), _num(overall[k])] for k in keys], {1}))
    out.append('<p class="muted">This report was generated from the records plinth keeps; prompts and answers are not included.</p>')
    out.append("</body></html>")
    return "\n".join(out)


def _reference(ref: dict[str, Any]) -> str:
    if not isinstance(ref, dict):
        return str(ref)
    return ", ".join(f"{k} {v}" for k, v in ref.items() if isinstance(v, str | int | float) and not isinstance(v, bool)) or "-"


def _gap_text(g: dict[str, Any]) -> str:
    verdict = "passed" if g.get("passed") else "FAILED"
    return f"{g.get('attribute')} {g.get('metric')} {_num(g.get('value'))} (threshold {_num(g.get('threshold'))}, {verdict})"
