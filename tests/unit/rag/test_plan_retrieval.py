"""Plan-aware retrieval on the Acme Health corpus (real embedder, SQLite): a question naming a
plan is not served other plans' summaries; comparisons get the overview table."""

from __future__ import annotations

from typing import Any

import pytest

from plinth.rag.plans import PlanQuery, plan_query, plans_named
from tests.unit.rag.conftest import ACME, make_knowledge

PLANS = ["bronze", "gold", "silver"]


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("acme-plans")
    k = make_knowledge(home, f"sqlite:///{home / 'plinth.db'}", "embedded")
    k.create("acme-policies")
    k.add_paths("acme-policies", [ACME / "policies"])
    yield k
    k.store.close()


def test_plans_come_from_the_documents_front_matter(acme: Any) -> None:
    kb = acme.get("acme-policies")
    assert acme.plans(kb, kb.current_version) == PLANS


def test_what_a_question_says_about_plans() -> None:
    assert plan_query("How much is the Gold deductible?", PLANS) == PlanQuery(("gold",), False)
    assert plan_query("What is the deductible?", PLANS) == PlanQuery((), False)
    # two plans, or a comparison word, make a comparison
    assert plan_query("Bronze or Silver: which has the lower premium?", PLANS) == PlanQuery(("bronze", "silver"), True)
    assert plan_query("Which plan has the lowest deductible?", PLANS).comparison
    assert plan_query("What is the difference between the plans?", PLANS).single is None
    # whole words only: "golden" names no plan
    assert plans_named("my golden retriever", PLANS) == []
    # the member's earlier turn lends its plan to a question that names none
    assert plan_query("And the deductible?", PLANS, ["I'm on Silver.", "What does a specialist cost?"]).single == "silver"
    assert plan_query("And the deductible?", PLANS, ["Gold or Silver?"]).plans == ()


@pytest.mark.parametrize(
    ("question", "plan"),
    [
        ("How many physical therapy visits does the Gold plan cover?", "gold"),
        ("What is the Bronze copay for urgent care?", "bronze"),
        ("Is an adult eye exam covered on Silver?", "silver"),
    ],
)
def test_a_question_naming_one_plan_gets_no_other_plan_summary(acme: Any, question: str, plan: str) -> None:
    plain = acme.search("acme-policies", question, k=4)
    result, pq = acme.retrieve("acme-policies", question, k=4)
    assert pq.single == plan
    served = {p.metadata.get("plan") for p in result.passages}
    assert served <= {plan, None}, [(p.document, p.heading) for p in result.passages]
    assert any(p.metadata.get("plan") == plan for p in result.passages)
    assert len(result.passages) == 4
    # the plain search is what plan-awareness fixes: it mixes plans for these questions
    assert {p.metadata.get("plan") for p in plain.passages} - {plan, None}


def test_a_comparison_gets_the_overview_table(acme: Any) -> None:
    result, pq = acme.retrieve("acme-policies", "Compare the out-of-pocket maximum of Bronze and Gold", k=4)
    assert pq.comparison and pq.plans == ("bronze", "gold")
    assert any(p.document == "plans-overview.md" for p in result.passages)


def test_plan_awareness_can_be_switched_off(acme: Any) -> None:
    q = "How many physical therapy visits does the Gold plan cover?"
    result, pq = acme.retrieve("acme-policies", q, k=4, plan_aware=False)
    assert pq == PlanQuery()
    assert [p.chunk_id for p in result.passages] == [p.chunk_id for p in acme.search("acme-policies", q, k=4).passages]
