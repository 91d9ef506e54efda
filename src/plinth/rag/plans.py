"""Plan-aware retrieval: questions that name a plan get that plan's passages, not another's.

A knowledge base's documents may carry a ``plan`` in their front matter (Acme's
``bronze-plan.md`` has ``plan: bronze``). When the question (or an earlier user turn of the
conversation: "I'm on Gold. ...") names exactly one of the knowledge base's plans, passages of
documents of *other* plans are dropped and the named plan's are moved up; passages of
documents without a plan (pharmacy, maternity, the overview table) stay where retrieval put
them. A comparison ("compare", "difference", "which plan", two plans named) keeps every plan
and makes sure a table of a plan-less document naming every plan compared — the overview
table — is served.

Plans are found in the documents' metadata, never hard-coded: any knowledge base whose
documents have a ``plan`` field gets the behaviour.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from plinth.domain.knowledge import Passage

_COMPARE = re.compile(
    r"\b(compare[ds]?|comparison|comparing|differen(?:ce|ces|t)|versus|vs\.?|which plan|what plan|each plan|every plan"
    r"|all (?:three |the )?plans"
    r"|cheapest|best plan|better plan|between (?:the )?plans|plans? (?:differ|compare))\b",
    re.IGNORECASE,
)

#: how much a passage of the named plan moves up (a factor on the fused score)
PLAN_BOOST = 1.15


@dataclass(frozen=True)
class PlanQuery:
    """What the question says about plans: the plans it names (in the knowledge base's own
    spelling), and whether it compares them."""

    plans: tuple[str, ...] = ()
    comparison: bool = False

    @property
    def single(self) -> str | None:
        return self.plans[0] if len(self.plans) == 1 and not self.comparison else None

    def as_dict(self) -> dict[str, Any]:
        return {"plans": list(self.plans), "comparison": self.comparison}


def plans_named(text: str, plans: Sequence[str]) -> list[str]:
    """The plans of ``plans`` that ``text`` names as whole words, in the order they appear."""
    found: list[tuple[int, str]] = []
    for plan in plans:
        m = re.search(rf"\b{re.escape(plan)}\b", text, re.IGNORECASE)
        if m:
            found.append((m.start(), plan))
    return [p for _, p in sorted(found)]


def plan_query(question: str, plans: Sequence[str], context: Sequence[str] = ()) -> PlanQuery:
    """What ``question`` asks about ``plans``. When the question names none, the latest of
    ``context`` (earlier user turns, newest last) that names exactly one lends it."""
    named = plans_named(question, plans)
    comparison = len(named) >= 2 or bool(_COMPARE.search(question))
    if not named and not comparison:
        for text in reversed(context):
            earlier = plans_named(text, plans)
            if len(earlier) == 1:
                named = earlier
                break
    return PlanQuery(tuple(named), comparison)


def passage_plan(p: Passage) -> str | None:
    plan = p.metadata.get("plan") if p.metadata else None
    return None if plan is None else str(plan).lower()


def apply(
    passages: list[Passage], pq: PlanQuery, plans: Sequence[str], k: int, extra: Callable[[], list[Passage]] | None = None
) -> list[Passage]:
    """The ``k`` passages to serve out of ``passages`` (more than ``k`` candidates, best
    first). ``extra`` fetches more candidates for a comparison when none is such a table."""
    lowered = [p.lower() for p in plans]
    if pq.single is not None:
        want = pq.single.lower()
        kept = [p for p in passages if passage_plan(p) in (None, want)]
        best = kept[0] if kept else None  # the question's best match, before any boost
        kept.sort(key=lambda p: -(p.score * (PLAN_BOOST if passage_plan(p) == want else 1.0)))
        out = kept[:k]
        # fused scores lie close together: the boost may push the best plan-less match ("yellow fever
        # shots on Bronze": the vaccines section) below k passages of the plan's summary; it stays
        if best is not None and best not in out and k > 0:
            out = [*out[: k - 1], best]
        return out
    out = list(passages[:k])
    wanted = [p.lower() for p in pq.plans] if len(pq.plans) >= 2 else lowered

    def compares(p: Passage) -> bool:  # a table naming every plan compared (the overview table)
        return passage_plan(p) is None and "|" in p.text and set(plans_named(p.text, lowered)) >= set(wanted)

    if pq.comparison and not any(compares(p) for p in out):
        pool = [p for p in passages[k:] if compares(p)]
        if not pool and extra is not None:
            seen = {p.chunk_id for p in passages}
            pool = [p for p in extra() if p.chunk_id not in seen and compares(p)]
        if pool:
            out = [*out[: k - 1], pool[0]] if k > 1 else [pool[0]]
    return out
