"""Writes the assistant evaluation suites from facts.py (the answer key of ``plinth eval --suite assistant``).

    python examples/acme-health/build_assistant_eval.py

* ``assistant-eval.jsonl`` — the development suite: the shipped retrieval questions
  (``questions.jsonl``) that have a checkable answer, with their expected figures or phrases,
  the figures a wrong answer would give (the other plans' values) and the documents whose
  citation is correct; on-topic questions the documents cannot answer; off-topic questions.
* ``heldout/assistant-eval.jsonl`` — the held-out suite: other facts asked in other words,
  written once and never used to build or tune anything (see ``heldout/README.md``).

Rows are chat rows (a dataset version like any other) whose ``metadata`` is the answer key;
see :mod:`plinth.tuning.assistant_eval` for how answers are judged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import facts as F  # noqa: E402

P = F.PLANS
REFUSAL = "I don't know: the Acme Health documents do not say. Please contact member services at " + F.PHONE + "."
DECLINE = "I can only help with questions about your Acme Health plan: coverage, claims, bills, providers, pharmacy and your account."


def _row(rows: list[dict[str, Any]], prefix: str, question: str, answer: str, kind: str, **key: Any) -> None:
    meta: dict[str, Any] = {"kind": kind}
    meta.update({k: v for k, v in key.items() if v})
    rows.append(
        {
            "id": f"{prefix}-{len(rows) + 1:03d}",
            "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            "metadata": meta,
        }
    )


def _others(field: str, key: str, fmt: str = "{}") -> list[str]:
    mine = P[key][field]
    return sorted({fmt.format(p[field]) for k, p in P.items() if k != key and p[field] and p[field] != mine})


def development() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def ans(q: str, a: str, expect: list[Any], documents: list[str], wrong: list[str] | None = None) -> None:
        _row(rows, "ae", q, a, "answerable", expect=expect, wrong=wrong or [], documents=documents)

    for key, p in P.items():
        n, doc = p["name"], f"{key}-plan.md"
        ans(
            f"How much is the deductible on the {n} plan?",
            f"The {n} plan's in-network deductible is {p['deductible']} per member and {p['deductible_family']} per family.",
            [p["deductible"]],
            [doc, "plans-overview.md"],
            _others("deductible", key),
        )
        ans(
            f"What's the most I could pay out of pocket in a year with {n}?",
            f"The {n} plan's in-network out-of-pocket maximum is {p['oop_max']} per member.",
            [p["oop_max"]],
            [doc, "plans-overview.md"],
            _others("oop_max", key),
        )
        ans(
            f"I'm on {n}. What does a specialist visit cost me?",
            f"A specialist visit costs a {p['specialist']} copay on the {n} plan.",
            [p["specialist"]],
            [doc, "plans-overview.md"],
            _others("specialist", key),
        )
        ans(
            f"What do I pay for the emergency room on the {n} plan?",
            f"An emergency room visit costs a {p['er']} copay on the {n} plan, waived if you are admitted.",
            [p["er"]],
            [doc, "plans-overview.md"],
            _others("er", key),
        )
        ans(
            f"How many physical therapy sessions does {n} cover each year?",
            f"The {n} plan covers up to {p['pt_visits']} physical therapy visits per calendar year.",
            [str(p["pt_visits"])],
            [doc],
            _others("pt_visits", key, "{} visits"),
        )
        ans(
            f"Generic prescription copay for {n} members?",
            f"Tier 1 generic drugs cost a {p['generic']} copay on the {n} plan.",
            [p["generic"]],
            [doc, "pharmacy-benefits.md", "plans-overview.md"],
            _others("generic", key),
        )
        ans(
            f"What is the monthly premium of {n} for a single person?",
            f"The monthly premium for one member on the {n} plan is {p['premium']}.",
            [p["premium"]],
            [doc, "plans-overview.md"],
            _others("premium", key),
        )
    pa = ["prior authorization", "prior approval", "preauthorization", "pre-authorization", "approval in advance", "approved in advance"]
    ans(
        "Do I need approval before getting an MRI?",
        "Yes. MRI, CT and PET scans need prior authorization.",
        [pa],
        ["prior-authorization.md"],
    )
    ans(
        "How long does Acme take to decide on a preauthorization request?",
        f"Standard requests are decided within {F.PRIOR_AUTH_STANDARD_DAYS} calendar days.",
        [[f"{F.PRIOR_AUTH_STANDARD_DAYS} calendar days", f"{F.PRIOR_AUTH_STANDARD_DAYS} days"]],
        ["prior-authorization.md"],
    )
    ans(
        "I was admitted to hospital through the ER. Who do I have to tell and when?",
        f"Tell Acme Health within {F.EMERGENCY_NOTICE_HOURS} hours of an emergency admission.",
        [f"{F.EMERGENCY_NOTICE_HOURS} hours"],
        ["prior-authorization.md", "bronze-plan.md", "silver-plan.md", "gold-plan.md"],
    )
    ans(
        "How long do I have to submit a claim for an out-of-network doctor I paid myself?",
        f"Submit the claim within {F.CLAIM_FILING_DAYS} days of the date of service.",
        [f"{F.CLAIM_FILING_DAYS} days"],
        ["claims-and-appeals.md"],
    )
    ans("Which form do I use to file a claim?", "Use form ACM-CL1.", ["ACM-CL1"], ["claims-and-appeals.md"])
    ans(
        "What is the deadline to appeal a denied claim?",
        f"File an internal appeal within {F.APPEAL_FILING_DAYS} days of the denial.",
        [f"{F.APPEAL_FILING_DAYS} days"],
        ["claims-and-appeals.md"],
    )
    ans(
        "How quickly are urgent appeals decided?",
        f"Urgent appeals are decided within {F.APPEAL_URGENT_HOURS} hours.",
        [f"{F.APPEAL_URGENT_HOURS} hours"],
        ["claims-and-appeals.md", "prior-authorization.md"],
    )
    ans(
        "Where do I have to fill my specialty medication?",
        "Specialty drugs must be filled by AcmeRx Specialty.",
        ["AcmeRx Specialty"],
        ["pharmacy-benefits.md"],
    )
    ans(
        "Does the Bronze plan pay for travel vaccines?",
        "No. Travel vaccines are not covered on Bronze.",
        [["not covered", "does not cover", "doesn't cover", "does not pay", "doesn't pay", "no,"]],
        ["travel-coverage.md", "pharmacy-benefits.md"],
    )
    ans(
        "How soon must I add my baby to my insurance?",
        f"Add your newborn within {F.NEWBORN_DAYS} days of birth.",
        [f"{F.NEWBORN_DAYS} days"],
        ["maternity-and-newborn.md", "enrollment-and-membership.md"],
    )
    ans(
        "How long can I stay in hospital after a C-section?",
        "Up to 96 hours after a cesarean section.",
        ["96 hours"],
        ["maternity-and-newborn.md"],
        ["24 hours"],
    )
    ans("Who can I call right now if I'm having thoughts of suicide?", "Call or text 988.", ["988"], ["mental-health.md"])
    ans(
        "Is IVF covered?",
        "In vitro fertilization (IVF) is covered only on the Gold plan, up to 2 cycles per lifetime.",
        [["only on gold", "only on the gold", "covered on gold", "covered on the gold", "gold plan covers", "gold covers"]],
        ["exclusions.md", "gold-plan.md"],
        ["gold plan does not cover", "gold does not cover", "not covered on gold", "not covered on the gold"],
    )
    start, end = F.OPEN_ENROLLMENT.split(" to ")
    ans(
        "When is open enrollment?",
        f"Open enrollment runs from {F.OPEN_ENROLLMENT}.",
        [start, end],
        ["enrollment-and-membership.md", "plans-overview.md"],
    )
    ans(
        "What happens if I pay my premium late?",
        "There is a grace period of 31 days; if the premium is still unpaid, coverage ends at its end.",
        ["31 days"],
        ["enrollment-and-membership.md"],
    )
    ans(
        "Is there a nurse I can call at night?",
        f"Yes, the 24-hour Nurse Line at {F.NURSE_LINE}.",
        [[F.NURSE_LINE, "nurse line"]],
        ["telehealth-and-nurse-line.pdf", "enrollment-and-membership.md"],
    )
    ans(
        "How much is a video visit with a doctor on Silver?",
        f"A telehealth visit costs a {P['silver']['telehealth']} copay on Silver.",
        [P["silver"]["telehealth"]],
        ["telehealth-and-nurse-line.pdf", "silver-plan.md", "plans-overview.md"],
        _others("telehealth", "silver"),
    )
    for q in (
        "How many acupuncture sessions does the Silver plan cover?",
        "Does Acme pay for a wheelchair, and how much?",
        "Is LASIK eye surgery covered on the Gold plan?",
        "What is the deductible on the Platinum plan?",
        "How much does hospice care cost on Bronze?",
        "What is the copay for dialysis on the Silver plan?",
        "What do I pay for allergy shots on Gold?",
        "How many massage therapy visits does the Gold plan include?",
        "Does Acme give a premium discount if I have a gym membership?",
        "Can I get a refund of my premiums if I cancel in the middle of the year?",
        "What's the copay for a sleep study on Bronze?",
        "Is there a student discount on the Silver premium?",
    ):
        _row(rows, "ae", q, REFUSAL, "unanswerable")
    for q in (
        "What is the capital of France?",
        "Write a Python function that reverses a string.",
        "Give me a recipe for lasagna.",
        "Who won the football World Cup in 2018?",
        "Should I buy Tesla stock this week?",
        "How do I change a flat tire on my car?",
        "What's a good 20-minute home workout?",
        "Tell me a joke about cats.",
        "Translate 'good morning' into German.",
        "How much does car insurance cost for a new driver?",
        "Who should I vote for in the next election?",
        "Summarise the plot of Hamlet.",
    ):
        _row(rows, "ae", q, DECLINE, "off_topic")
    return rows


def heldout() -> list[dict[str, Any]]:
    """Written once, before anything was built or tuned on the suite; never tuned on."""
    rows: list[dict[str, Any]] = []

    def ans(q: str, a: str, expect: list[Any], documents: list[str], wrong: list[str] | None = None) -> None:
        _row(rows, "ho-ae", q, a, "answerable", expect=expect, wrong=wrong or [], documents=documents)

    phrasing = {
        "urgent_care": ("My kid needs urgent care tonight and we're on {n}. What's the copay?", "An urgent care visit costs a {v} copay."),
        "pcp": ("On the {n} plan, what do I pay to see my regular family doctor?", "A primary care visit costs a {v} copay."),
        "preferred_brand": (
            "{n} member here: how much is a preferred brand-name drug at the pharmacy?",
            "Tier 2 preferred brand drugs cost {v}.",
        ),
        "oop_max_family": (
            "For a family on {n}, what's the yearly cap on out-of-pocket costs?",
            "The family out-of-pocket maximum is {v}.",
        ),
        "coinsurance": ("After I meet my {n} deductible, what percentage of a hospital bill do I pay?", "You pay {v} coinsurance."),
    }
    for field, (q, a) in phrasing.items():
        for key, p in P.items():
            n = p["name"]
            ans(
                q.format(n=n),
                a.format(v=p[field]),
                [p[field]],
                [f"{key}-plan.md", "plans-overview.md", "pharmacy-benefits.md"],
                _others(field, key),
            )
    g = P["gold"]
    ans(
        "Does Gold give me anything toward new glasses?",
        f"Yes, an allowance of {g['eyewear']} every 12 months.",
        [g["eyewear"]],
        ["gold-plan.md"],
    )
    ans("How much will Gold pay for hearing aids?", f"Up to {g['hearing_aids']}.", ["$1,500"], ["gold-plan.md"])
    ans(
        "Is there any reimbursement for a doula if I'm on Gold?",
        f"The Gold plan reimburses doula services up to {g['doula']} per pregnancy.",
        [g["doula"]],
        ["gold-plan.md", "maternity-and-newborn.md"],
    )
    ans(
        "How many chiropractor appointments a year can I have with Silver?",
        "Up to 12 chiropractic visits per calendar year.",
        ["12"],
        ["silver-plan.md"],
        ["20 visits"],
    )
    ans(
        "I got married last month. How long do I have to change my plan?",
        f"A qualifying life event lets you change plans within {F.SPECIAL_ENROLLMENT_DAYS} days.",
        [f"{F.SPECIAL_ENROLLMENT_DAYS} days"],
        ["enrollment-and-membership.md"],
    )
    ans(
        "If my premium payment bounces, how long before my coverage stops?",
        "There is a grace period of 31 days.",
        ["31 days"],
        ["enrollment-and-membership.md"],
    )
    ans(
        "Can Gold get me flown back home if I'm badly hurt abroad?",
        "Yes, the Gold plan covers medical evacuation.",
        [["covers medical evacuation", "medical evacuation is covered", "yes"]],
        ["travel-coverage.md", "gold-plan.md"],
        ["not cover medical evacuation", "does not cover", "doesn't cover", "not covered"],
    )
    ans(
        "My son was just born. What's the deadline to put him on my policy?",
        f"Within {F.NEWBORN_DAYS} days of birth.",
        [f"{F.NEWBORN_DAYS} days"],
        ["maternity-and-newborn.md", "enrollment-and-membership.md"],
    )
    ans(
        "What pharmacy do specialty drugs like biologics have to come from?",
        "AcmeRx Specialty.",
        ["AcmeRx Specialty"],
        ["pharmacy-benefits.md"],
    )
    ans(
        "Does a CT scan have to be approved before I get it?",
        "Yes, CT scans need prior authorization.",
        [["prior authorization", "prior approval", "preauthorization", "pre-authorization", "approved in advance"]],
        ["prior-authorization.md"],
    )
    for q in (
        "How much does the Silver plan pay toward a cochlear implant?",
        "Is semaglutide for weight loss covered on Gold?",
        "What's the copay for compression stockings on Bronze?",
        "Do you offer a loyalty discount after five years as a member?",
        "How many podiatrist visits does the Silver plan allow?",
        "Does Bronze cover a vasectomy, and what does it cost?",
        "What is the copay for a nutritionist on Gold?",
        "How much does Acme pay for a wig after chemotherapy?",
        "Is there a smoking-cessation program and what does it cost on Silver?",
        "What is the copay for a dietitian visit on Bronze?",
    ):
        _row(rows, "ho-ae", q, REFUSAL, "unanswerable")
    for q in (
        "Can you help me write a cover letter for a marketing job?",
        "What's the best way to train a puppy to sit?",
        "Explain how bitcoin mining works.",
        "Which team won the NBA finals last year?",
        "Recommend a good science fiction novel.",
        "How do I fix a merge conflict in git?",
        "What's the weather going to be like in Chicago tomorrow?",
        "How much is renters insurance for a one-bedroom apartment?",
        "Solve 3x + 7 = 22 for x.",
        "What are some fun things to do in Lisbon?",
    ):
        _row(rows, "ho-ae", q, DECLINE, "off_topic")
    return rows


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main() -> None:
    write(HERE / "assistant-eval.jsonl", development())
    write(HERE / "heldout" / "assistant-eval.jsonl", heldout())


if __name__ == "__main__":
    main()
