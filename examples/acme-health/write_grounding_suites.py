"""Writes the second development suite and the second held-out suite of grounded answering.

    python examples/acme-health/write_grounding_suites.py

Both are assistant evaluation suites (``plinth eval MODEL --suite assistant --data FILE``; rows as
in ``assistant-eval.jsonl``), written by hand from the policy documents in ``policies/``:

* ``grounding-dev-2.jsonl`` — development questions for the grounding mechanism: members' own
  words (GP, walk-in, meds, contacts, tummy tuck), typos, the plan given in an earlier turn,
  filler ("my daughter twisted her ankle"), and on-topic questions the documents do not answer.
  Thresholds and term maps may be tuned on it.
* ``heldout/assistant-eval-2.jsonl`` — written once, in the same sitting as the development
  set and committed before any code ran on it; other facts in other words. Never tuned on:
  report it next to the development numbers.
* ``grounding-dev-3.jsonl`` — more development questions (30/15/5) for the refusal rework of ADR 0123:
  everyday verbs around a documented fact, near-miss unanswerables. May be tuned on.
* ``heldout/assistant-eval-3.jsonl`` — a third held-out suite (25/10/10) written for the refusal
  rework of ADR 0123, in members' everyday words, and committed before any code ran on it.
* ``grounding-dev-4.jsonl`` — development questions (20/6/4) for the unit selection of ADR 0126 in the
  styles of held-out-4 (long messages, a plan named in passing, comparisons, yes/no), on other facts;
  written after held-out-4 was committed, never copied from it. May be tuned on.
* ``heldout/assistant-eval-4.jsonl`` — a fourth held-out suite (25/10/10) written for the unit-selection
  work of ADR 0126 in new styles (long multi-sentence messages, a plan named in passing, comparisons,
  yes/no questions), committed before any code ran on it.

Every expected phrase of an answerable row is checked against its accepted documents by
``tests/unit/rag/test_grounding_suites.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PHONE = "1-800-555-0142"
REFUSAL = f"I don't know — the policy documents I can search do not answer this. Please contact Member Services at {PHONE}."
DECLINE = "I can only help with questions about your Acme Health plan."

OV = "plans-overview.md"
B, S, G = "bronze-plan.md", "silver-plan.md", "gold-plan.md"


def _rows(prefix: str, answerable: list[tuple[Any, ...]], unanswerable: list[str], off_topic: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(messages: list[dict[str, str]], answer: str, meta: dict[str, Any]) -> None:
        rows.append(
            {
                "id": f"{prefix}-{len(rows) + 1:03d}",
                "messages": [*messages, {"role": "assistant", "content": answer}],
                "metadata": meta,
            }
        )

    for q, answer, expect, wrong, documents in answerable:
        if isinstance(q, str):
            messages = [{"role": "user", "content": q}]
        else:  # an earlier turn gives the plan
            messages = [
                {"role": "user", "content": q[0]},
                {"role": "assistant", "content": "Sure, go ahead."},
                {"role": "user", "content": q[1]},
            ]
        add(messages, answer, {"kind": "answerable", "expect": expect, "wrong": wrong, "documents": documents})
    for q in unanswerable:
        add([{"role": "user", "content": q}], REFUSAL, {"kind": "unanswerable"})
    for q in off_topic:
        add([{"role": "user", "content": q}], DECLINE, {"kind": "off_topic"})
    return rows


NOT_COVERED = ["not covered", "does not cover", "do not cover", "is not covered", "are not covered"]

DEV_ANSWERABLE: list[tuple[Any, ...]] = [
    (
        "I'm on Gold — how much for a walk-in clinic visit when my doctor's office is closed?",
        "Urgent care costs a $25 copay.",
        ["$25"],
        ["$50", "$75"],
        [G, OV],
    ),
    (
        "my daughter twisted her ankle, we have bronze, how much is the ER",
        "An emergency room visit costs a $500 copay.",
        ["$500"],
        ["$350", "$150"],
        [B, OV],
    ),
    (
        "With Silver, how much are brand-name meds that are on the preferred list?",
        "Preferred brand drugs cost a $40 copay.",
        ["$40"],
        ["$60", "$25"],
        [S, "pharmacy-benefits.md"],
    ),
    ("What's the coinsurance rate on Bronze after I hit my deductible?", "40% coinsurance.", ["40%"], ["30%", "10%"], [B, OV]),
    ("Gold: what share of a surgery bill do I pay once the deductible is done?", "10% coinsurance.", ["10%"], ["30%", "40%"], [G, OV]),
    ("How much does Gold give me for contacts?", "An allowance of $150 every 12 months.", ["$150"], [], [G]),
    ("Is an eye test covered on Gold, and what does it cost?", "One routine adult eye exam per year, $0 copay.", ["$0"], ["$20"], [G]),
    ("How many visits to a chiropractor do Gold members get?", "Up to 20 visits per calendar year.", ["20 visits"], ["12 visits"], [G]),
    ("Can I see a chiropractor on Bronze?", "Chiropractic care is not covered on the Bronze plan.", [NOT_COVERED], [], [B]),
    (
        "How many speech therapy sessions can my child get on Silver?",
        "Up to 16 visits per calendar year.",
        ["16 visits"],
        ["12 visits", "20 visits"],
        [S],
    ),
    ("How much is Bronze per month?", "The monthly premium is $289.", ["$289"], ["$412", "$568"], [B, OV]),
    (
        "What's a therapist visit for anxiety on Bronze?",
        "A mental health office visit costs $50.",
        ["$50"],
        ["$30", "$15"],
        [B, "mental-health.md"],
    ),
    (
        "What do I pay for counselling with a psychologist on Gold?",
        "A mental health office visit costs $15.",
        ["$15"],
        ["$30", "$50"],
        [G, "mental-health.md"],
    ),
    (
        "Do I need a referral to see a psychiatrist?",
        "You do not need a referral for mental health care.",
        [["do not need a referral", "no referral", "not needed"]],
        [],
        ["mental-health.md", "provider-network.md", B],
    ),
    (
        "We just adopted a little girl. How long do we have to enroll her?",
        "Within 60 days of the event.",
        ["60 days"],
        [],
        ["enrollment-and-membership.md", OV],
    ),
    (
        "I lost the insurance I had through work — how many days do I have to sign up with Acme?",
        "Within 60 days.",
        ["60 days"],
        [],
        ["enrollment-and-membership.md", OV],
    ),
    (
        "Is there a cap on what I pay per fill for specialty meds on Silver?",
        "30% up to $350 per fill.",
        ["$350"],
        ["$500", "$250"],
        [S, "pharmacy-benefits.md"],
    ),
    (
        "How much does a 3-month mail order supply cost?",
        "A 90-day supply costs two retail copays.",
        ["two retail copays"],
        [],
        ["pharmacy-benefits.md", B, S, G],
    ),
    (
        "My doctor wants me to try a cheaper drug first — what's that called?",
        "Step therapy.",
        ["step therapy"],
        [],
        ["pharmacy-benefits.md"],
    ),
    (
        "How fast will Acme answer a normal request for a drug that isn't on the list?",
        "Standard exception requests are decided within 72 hours.",
        ["72 hours"],
        [],
        ["pharmacy-benefits.md"],
    ),
    (
        "Does knee surgery at an outpatient surgery center need pre-approval?",
        "Yes, it needs prior authorization.",
        [["prior authorization", "preauthorization"]],
        [],
        ["prior-authorization.md"],
    ),
    (
        "Does a wheelchair that costs $800 need approval first?",
        "Durable medical equipment over $500 needs prior authorization.",
        [["prior authorization", "preauthorization"]],
        [],
        ["prior-authorization.md"],
    ),
    ("Once a prior auth is approved, how long is it usually good for?", "Usually 90 days.", ["90 days"], [], ["prior-authorization.md"]),
    (
        "I'm on Bronze and want a check-up while I live in France for a month. Am I covered?",
        "Bronze does not cover routine care outside the United States.",
        [NOT_COVERED],
        [],
        ["travel-coverage.md", "exclusions.md"],
    ),
    (
        "How long do I have to send in a bill from a doctor I saw on my trip to Italy?",
        "File a claim within 180 days of the date of service.",
        ["180 days"],
        [],
        ["claims-and-appeals.md", "travel-coverage.md"],
    ),
    (
        "If my claim gets turned down, how long do I have to fight it?",
        "File an internal appeal within 180 days of the denial notice.",
        ["180 days"],
        [],
        ["claims-and-appeals.md"],
    ),
    (
        "Does an outside independent review cost me anything?",
        "External review costs you nothing.",
        ["costs you nothing"],
        [],
        ["claims-and-appeals.md"],
    ),
    (
        "How long will Acme take to rule on my appeal for a surgery I haven't had yet?",
        "Within 30 days.",
        ["30 days"],
        ["60 days"],
        ["claims-and-appeals.md"],
    ),
    (
        "Can my wife handle the appeal for me?",
        "You may appoint someone, such as a family member, to appeal for you.",
        ["family member"],
        [],
        ["claims-and-appeals.md"],
    ),
    ("Are breastfeeding classes paid for?", "Reimbursed up to $150 per pregnancy.", ["$150"], [], ["maternity-and-newborn.md"]),
    ("What will delivering my baby cost on Silver?", "30% after the deductible.", ["30%"], ["40%", "10%"], ["maternity-and-newborn.md", S]),
    (
        "Does Silver pay for IVF?",
        "IVF is covered only on Gold.",
        [["only on gold", "gold plan covers", "covers diagnostic testing"]],
        [],
        ["exclusions.md", S],
    ),
    ("Are hearing aids included in Silver?", "Hearing aids are not covered on the Silver plan.", [NOT_COVERED], [], [S, "exclusions.md"]),
    (
        "Are prenatal checkups free?",
        "Prenatal visits cost nothing on every plan in network.",
        [["cost nothing", "no cost"]],
        [],
        ["maternity-and-newborn.md", B, S, G],
    ),
    (
        "Are yellow fever shots covered on Bronze?",
        "Travel vaccines are not covered on Bronze.",
        [NOT_COVERED],
        [],
        ["pharmacy-benefits.md", "travel-coverage.md"],
    ),
    (
        "Is the shingles jab free at the pharmacy?",
        "Routine vaccines are free at in-network pharmacies.",
        ["free"],
        [],
        ["pharmacy-benefits.md"],
    ),
    (
        "Can I do a video appointment on a Sunday?",
        "Acme Virtual Care is open 24 hours a day, 7 days a week.",
        [["7 days a week", "24 hours a day"]],
        [],
        ["telehealth-and-nurse-line.pdf"],
    ),
    ("Is Bronze an HMO or a PPO?", "Bronze is an EPO.", ["EPO"], ["PPO"], [B, OV, "provider-network.md"]),
    (
        "Can I go to out-of-network doctors with Bronze?",
        "Bronze does not cover out-of-network care.",
        [["does not cover out-of-network", "covered only from providers in acme select", "only from providers"]],
        [],
        ["provider-network.md", B],
    ),
    (
        "What's the out of network coinsurance on Gold?",
        "30% coinsurance after the out-of-network deductible.",
        ["30%"],
        ["50%"],
        [G, "travel-coverage.md"],
    ),
    ("Is a tummy tuck covered?", "Cosmetic surgery is not covered.", [["cosmetic"]], [], ["exclusions.md"]),
    (
        "Will Acme pay for breast reconstruction after a mastectomy?",
        "Reconstructive surgery after a mastectomy is covered.",
        ["reconstructive surgery"],
        [],
        ["exclusions.md"],
    ),
    ("Can I get my medical records for free?", "Yes, free of charge within 30 days.", ["free of charge"], [], ["member-rights.html"]),
    ("How far back can I find out who my health info was shared with?", "The past six years.", ["six years"], [], ["member-rights.html"]),
    ("How much is the dedcutible on silver?", "$3,000 per member.", ["$3,000"], ["$6,500", "$500"], [S, OV]),
    ("whats the copay for a speclist on gold", "A $35 copay.", ["$35"], ["$60", "$100"], [G, OV]),
    ("famly deductable for bronze?", "$13,000 per family.", ["$13,000"], ["$6,000", "$1,000"], [B, OV]),
    (("I have the Silver plan.", "How much is a specialist visit?"), "A $60 copay.", ["$60"], ["$35", "$100"], [S, OV]),
    (
        ("We're a Gold family.", "And what do we pay for generic pills?"),
        "A $5 copay.",
        ["$5"],
        ["$10", "$15"],
        [G, OV, "pharmacy-benefits.md"],
    ),
    (
        ("I'm on bronze btw", "how many physio visits do I get"),
        "Up to 12 visits per calendar year.",
        ["12 visits"],
        ["16 visits", "20 visits"],
        [B],
    ),
    (
        "Do I have to pick a family doctor on the Silver plan?",
        "Silver members are encouraged, but not required, to choose a PCP.",
        [["not required", "encouraged"]],
        [],
        ["provider-network.md"],
    ),
    (
        "How much does the Gold plan charge for a stay in the hospital?",
        "A $250 copay per admission, then 10% after the deductible.",
        ["$250"],
        [],
        [G],
    ),
]

DEV_UNANSWERABLE = [
    "What is the copay for an ambulance ride that is not an emergency?",
    "Is there a copay for a blood transfusion on Bronze?",
    "How many allergist visits does Gold allow per year?",
    "Does Acme cover Botox for migraines?",
    "Does the Gold plan pay for a private hospital room?",
    "Does Acme offer a discount for non-smokers?",
    "Is there a bonus for referring a friend to Acme?",
    "What is the copay for a kidney transplant on Gold?",
    "How much does Bronze charge for circumcising my newborn?",
    "Does Acme pay for a medical alert bracelet?",
    "What does Gold charge for a hearing test?",
    "Is there a copay for lab work on Bronze?",
    "How much does Silver pay for a physical exam for a sports team?",
    "Is there a copay for an audiologist visit on Silver?",
    "Does the Silver plan cover a home sleep test?",
]
DEV_OFF_TOPIC = [
    "How do I bake chocolate chip cookies?",
    "What's the capital of Australia?",
    "Write a haiku about the sea.",
    "How many moons does Jupiter have?",
    "Can you recommend a laptop for gaming?",
    "What's a good name for a goldfish?",
    "How do I renew my passport?",
    "What is the best pet insurance?",
    "Explain the rules of chess.",
    "My doctor says I should exercise more — what's a good running plan for beginners?",
]

HELDOUT_ANSWERABLE: list[tuple[Any, ...]] = [
    (
        "Our household is on Silver — what's the combined deductible for the whole family?",
        "$6,000 per family.",
        ["$6,000"],
        ["$13,000", "$1,000"],
        [S, OV],
    ),
    (
        "On Bronze, what's my share of an outpatient operation once the deductible's paid?",
        "40% coinsurance.",
        ["40%"],
        ["30%", "10%"],
        [B, OV],
    ),
    (
        "I'm a Gold member. Is there a charge when I see a counselor for depression?",
        "A $15 copay.",
        ["$15"],
        ["$30", "$50"],
        [G, "mental-health.md"],
    ),
    (
        "What will a month's supply of a non-preferred brand medicine cost me under Gold?",
        "A $50 copay.",
        ["$50"],
        ["$80", "$120"],
        [G, "pharmacy-benefits.md"],
    ),
    (
        "What is the most a Gold member pays for one fill of a Tier 4 drug?",
        "20% up to $250 per fill.",
        ["$250"],
        ["$350", "$500"],
        [G, "pharmacy-benefits.md"],
    ),
    ("Does the Silver plan charge for a yearly eye checkup?", "A $20 copay.", ["$20"], [], [S]),
    (
        "Can Bronze members get money toward new hearing aids?",
        "Hearing aids are not covered on the Bronze plan.",
        [NOT_COVERED],
        ["$1,500"],
        [B, "exclusions.md"],
    ),
    (
        "How many OT sessions per year does Bronze include?",
        "Up to 12 visits per calendar year.",
        ["12 visits"],
        ["16 visits", "20 visits"],
        [B],
    ),
    (
        "If I go to the ER on Gold and they admit me, do I still owe the ER copay?",
        "The $150 copay is waived if you are admitted.",
        ["waived"],
        [],
        [G],
    ),
    (
        "Silver member: what do I owe for an ambulance in an emergency?",
        "30% coinsurance after the deductible.",
        ["30%"],
        ["40%", "10%"],
        [S],
    ),
    (
        "If I sign up during open enrollment, when does my coverage actually start?",
        "On January 1.",
        ["January 1"],
        [],
        ["enrollment-and-membership.md"],
    ),
    (
        "I want to switch my primary doctor on Bronze. When would the change kick in?",
        "On the first day of the next month.",
        ["first day of the next month"],
        [],
        ["provider-network.md"],
    ),
    (
        "How long do Bronze members have to choose a primary doctor before Acme picks one?",
        "30 days of enrollment.",
        ["30 days"],
        [],
        ["provider-network.md"],
    ),
    ("How many specialist visits does one Bronze referral allow?", "Up to 6 visits.", ["6 visits"], [], ["provider-network.md"]),
    (
        "Do I need a referral for my OB-GYN on Bronze?",
        "No referral is needed for OB-GYN care.",
        [["no referral is needed", "referrals are not needed", "not needed"]],
        [],
        [B, "provider-network.md"],
    ),
    (
        "Before Gold pays for doctors outside the network, how much deductible must I meet?",
        "$1,500 per member.",
        ["$1,500"],
        ["$6,000"],
        [G, "provider-network.md", "travel-coverage.md"],
    ),
    (
        "Does the Silver plan pay for a regular doctor visit while I'm traveling in Europe?",
        "Silver does not cover routine care outside the United States.",
        [NOT_COVERED],
        [],
        ["travel-coverage.md", "exclusions.md"],
    ),
    (
        "Are typhoid shots covered for Gold members going abroad?",
        "Travel vaccines are covered at no cost on Silver and Gold.",
        ["no cost"],
        [],
        ["travel-coverage.md", "pharmacy-benefits.md"],
    ),
    (
        "How much of my maintenance medicine can I get ahead of a long vacation?",
        "Up to a 90-day supply.",
        ["90-day"],
        [],
        ["travel-coverage.md"],
    ),
    ("How many breast pumps can I get per pregnancy?", "One per pregnancy.", ["one per pregnancy"], [], ["maternity-and-newborn.md"]),
    (
        "What does giving birth in hospital cost on Gold?",
        "A $250 copay per admission, then 10% after the deductible.",
        ["$250"],
        [],
        [G, "maternity-and-newborn.md"],
    ),
    ("Does Acme pay for a surrogate?", "Surrogacy arrangements are not covered.", ["surrogacy"], [], ["exclusions.md"]),
    (
        "Is private duty nursing ever covered?",
        "Only when approved in advance as medically necessary.",
        ["approved in advance"],
        [],
        ["exclusions.md"],
    ),
    (
        "My hospital bill abroad was in euros. How does Acme convert it?",
        "At the exchange rate of the date of service.",
        ["exchange rate"],
        [],
        ["claims-and-appeals.md"],
    ),
    (
        "On Bronze, do preferred brand drugs count against the deductible first?",
        "Tier 2 and Tier 3 drugs are subject to the deductible on Bronze.",
        ["subject to the deductible"],
        [],
        ["pharmacy-benefits.md"],
    ),
]
HELDOUT_UNANSWERABLE = [
    "How much does Silver pay for orthopedic shoe inserts?",
    "How much does Acme pay for renting a birthing pool?",
    "Is cryotherapy covered on Silver?",
    "What does Bronze pay for a varicose vein ablation?",
    "Is the Acme app available on smartwatches?",
    "What's the cancellation fee if I leave Acme before the year ends?",
    "What is the copay for a home COVID test on Bronze?",
    "How many days of respite care does Gold include?",
    "Does Acme cover scalp cooling caps during chemo?",
    "How much does Silver pay toward a blood pressure cuff?",
]
HELDOUT_OFF_TOPIC = [
    "What year did the Berlin Wall fall?",
    "Draft an email asking my landlord to fix the heater.",
    "What's the difference between a crocodile and an alligator?",
    "Give me a packing list for a camping weekend.",
    "How do I convert Celsius to Fahrenheit?",
    "Which phone has the best camera right now?",
    "Write a limerick about a cat.",
    "How do I start a vegetable garden?",
    "What's the history of the Olympic Games?",
    "How much does life insurance cost for a 40-year-old?",
]


# ---- held-out-3: written for issue 18's refusal rework (helper C2) from the policy documents alone,
# in members' everyday words, and committed before any code ran on it. Never tuned on.
CLAIMS, ENROL, MATERNITY = "claims-and-appeals.md", "enrollment-and-membership.md", "maternity-and-newborn.md"
HELDOUT3_ANSWERABLE: list[tuple[Any, ...]] = [
    (
        "What's my share of a hospital stay on Silver once the deductible is done?",
        "30% after the deductible.",
        ["30%"],
        ["40%", "10%"],
        [S, OV],
    ),
    ("If it's just me on the Gold plan, what do I pay every month?", "The monthly premium is $568.", ["$568"], ["$412", "$289"], [G, OV]),
    (
        ("We're on Silver.", "What does the urgent care place down the street charge us?"),
        "Urgent care costs a $50 copay.",
        ["$50"],
        ["$75", "$25"],
        [S, OV],
    ),
    (
        "Does my insurance pay for dental work for adults, like fillings?",
        "Adult dental care is not covered.",
        [NOT_COVERED],
        [],
        ["exclusions.md"],
    ),
    (
        "How many days do I have to send in a bill from a doctor I paid myself in Mexico?",
        "File the claim within 180 days of the date of service.",
        ["180 days"],
        [],
        [CLAIMS, "travel-coverage.md"],
    ),
    (
        "How quickly does Acme handle a claim once everything is sent in?",
        "Complete claims are processed within 30 days.",
        ["30 days"],
        [],
        [CLAIMS],
    ),
    (
        "My appeal got turned down as well. How long do I get to ask for an outside review?",
        "Within 4 months of the final internal denial.",
        ["4 months"],
        [],
        [CLAIMS],
    ),
    ("What would the ER charge me on Silver if they send me home the same night?", "A $350 copay.", ["$350"], ["$500", "$150"], [S, OV]),
    (
        "On Gold, what's the cap on out of pocket spending for a whole family?",
        "$8,000 per family.",
        ["$8,000"],
        ["$18,400", "$15,000"],
        [G, OV],
    ),
    (
        "Do I get anything back for a doula with Gold?",
        "Gold reimburses doula services up to $1,000 per pregnancy.",
        ["$1,000"],
        [],
        [G, MATERNITY],
    ),
    (
        "How long can a new mom stay in the hospital after a c-section?",
        "At least 96 hours after a cesarean section.",
        ["96 hours"],
        [],
        [MATERNITY],
    ),
    ("How long is the password reset link good for?", "The reset link is valid for 30 minutes.", ["30 minutes"], [], [ENROL]),
    ("What day of the month are premium payments due?", "Premiums are due on the first day of each month.", ["first day"], [], [ENROL]),
    (
        "I'm on Bronze. Does the plan chip in for chiropractor visits?",
        "Chiropractic care is not covered on the Bronze plan.",
        [NOT_COVERED],
        [],
        [B],
    ),
    (
        "How many physio sessions does Silver give me in a year?",
        "Up to 16 visits per calendar year.",
        ["16 visits"],
        ["12 visits", "20 visits"],
        [S],
    ),
    (
        "How long does Acme take to decide a normal prior authorization request?",
        "Standard requests are decided within 15 calendar days.",
        ["15 calendar days"],
        [],
        ["prior-authorization.md"],
    ),
    (
        "My pills are coming by mail order. How long until they show up?",
        "Delivery takes 5 to 7 days.",
        ["5 to 7 days"],
        [],
        ["pharmacy-benefits.md"],
    ),
    (
        "Does ringing the nurse line cost me anything?",
        "The Nurse Line is free on every plan.",
        ["free"],
        [],
        ["telehealth-and-nurse-line.pdf"],
    ),
    (
        "How much is a video call with a doctor on Bronze?",
        "A telehealth visit costs $25.",
        ["$25"],
        ["$10", "$0"],
        [B, OV, "telehealth-and-nurse-line.pdf"],
    ),
    (("I have the Gold plan.", "Will it put money toward new glasses?"), "An allowance of $150 every 12 months.", ["$150"], [], [G]),
    ("What coinsurance does Silver charge when I see someone outside the network?", "50% coinsurance.", ["50%"], ["30%"], [S]),
    ("How long after the wedding do I have to put my husband on my plan?", "Within 60 days of the event.", ["60 days"], [], [ENROL]),
    (
        "What's the most I'd pay per fill for a specialty drug on Silver?",
        "30% up to $350 per fill.",
        ["$350"],
        ["$500", "$250"],
        [S, "pharmacy-benefits.md"],
    ),
    (
        "If my doctor leaves the network in the middle of my treatment, how long can I keep seeing them?",
        "Up to 90 days at in-network cost sharing.",
        ["90 days"],
        [],
        ["provider-network.md"],
    ),
    (
        "How soon do I get a copy of my medical records after I ask for them?",
        "Within 30 days of asking.",
        ["30 days"],
        [],
        ["member-rights.html"],
    ),
]
HELDOUT3_UNANSWERABLE = [
    "How much does Gold pay for an ambulance ride from one hospital to another?",
    "Does Silver cover allergy testing?",
    "What do I pay for an overnight sleep lab on Bronze?",
    "Is LASIK covered on the Gold plan?",
    "How many nutritionist visits does Silver include?",
    "Is there a discount on gym memberships for Acme members?",
    "Does Acme reimburse a home blood glucose monitor?",
    "How much does Acme pay for hospice care?",
    "Does Silver pay for a personal trainer after knee surgery?",
    "How much does Gold cover for hypnotherapy to quit smoking?",
]
HELDOUT3_OFF_TOPIC = [
    "What's a good recipe for lentil soup?",
    "Who wrote Pride and Prejudice?",
    "How do I fix a flat tire on my bike?",
    "Translate 'good morning' into Portuguese.",
    "What's the tallest mountain in Africa?",
    "Recommend a podcast about ancient history.",
    "How do I stop a kitchen faucet from dripping?",
    "Who won the football game last night?",
    "Explain how a fixed-rate mortgage works.",
    "Which car insurance is cheapest for a teenage driver?",
]


# ---- dev-3: development questions for weighting the words a question uses but the documents do
# not (ADR 0123): everyday verbs and adverbs around a documented fact ("set me back", "shell out",
# "take effect"), and near-miss unanswerables whose missing word narrows a documented thing
# ("a private hospital room"). Thresholds and weights may be tuned on it.
DEV3_ANSWERABLE: list[tuple[Any, ...]] = [
    ("How much will a specialist set me back on Gold?", "A specialist visit is a $35 copay.", ["$35"], ["$100", "$60"], [G, OV]),
    (
        "What do I shell out for generic pills on Bronze?",
        "Tier 1 generic drugs cost $15.",
        ["$15"],
        ["$10", "$5"],
        [B, OV, "pharmacy-benefits.md"],
    ),
    ("On Silver, what does the ER bill me if I end up admitted?", "The $350 copay is waived if you are admitted.", ["waived"], [], [S]),
    (
        "When does my new PCP take effect after I switch on Bronze?",
        "On the first day of the next month.",
        ["first day of the next month"],
        [],
        ["provider-network.md"],
    ),
    (
        "I forked out cash for care in Spain. How long do I have to file?",
        "Within 180 days of the date of service.",
        ["180 days"],
        [],
        [CLAIMS, "travel-coverage.md"],
    ),
    ("Roughly how long does a replacement plastic card take to arrive?", "It arrives in 7 to 10 days.", ["7 to 10 days"], [], [ENROL]),
    (
        "How long until Acme gets back to me on an urgent appeal?",
        "Urgent appeals are decided within 72 hours.",
        ["72 hours"],
        [],
        [CLAIMS, "prior-authorization.md"],
    ),
    ("Silver member here: what does it charge me per month?", "The monthly premium is $412.", ["$412"], ["$289", "$568"], [S, OV]),
    ("What coinsurance am I stuck with on Bronze after the deductible?", "40% coinsurance.", ["40%"], ["30%", "10%"], [B, OV]),
    ("How much of an allowance toward contacts does Gold hand out?", "$150 every 12 months.", ["$150"], [], [G]),
    ("Until what date can I sign up during open enrollment?", "Open enrollment runs to December 15.", ["December 15"], [], [ENROL, OV]),
    (
        "How many chiropractor visits will Gold let me have in a year?",
        "Up to 20 visits per calendar year.",
        ["20 visits"],
        ["12 visits"],
        [G],
    ),
    ("What do I end up paying for a video visit on Gold?", "A $0 copay.", ["$0"], ["$25", "$10"], [G, OV, "telehealth-and-nurse-line.pdf"]),
    (
        ("I'm on Bronze.", "What's the damage for seeing my regular doctor?"),
        "A primary care visit costs $50.",
        ["$50"],
        ["$30", "$15"],
        [B, OV],
    ),
    (
        "How quickly will Acme reply to a standard formulary exception request?",
        "Within 72 hours.",
        ["72 hours"],
        [],
        ["pharmacy-benefits.md"],
    ),
    ("Once I've used my deductible on Gold, what percentage remains mine to pay?", "10% coinsurance.", ["10%"], ["30%", "40%"], [G, OV]),
    ("How late can I tell Acme that my newborn arrived?", "Within 30 days of birth.", ["30 days"], [], [ENROL, MATERNITY]),
    (
        "Can I still get an OB-GYN appointment on Bronze without a referral?",
        "Referrals are not needed for OB-GYN care.",
        ["not needed"],
        [],
        [B, "provider-network.md"],
    ),
    (
        "What happens if I stay behind on my premium past the grace period?",
        "Coverage ends at the end of the grace period.",
        ["coverage ends"],
        [],
        [ENROL],
    ),
    ("How much does the Gold plan reimburse per ear for hearing aids?", "Up to $1,500 per ear every 36 months.", ["$1,500"], [], [G]),
    ("Does Acme ever sell my health information?", "No: Acme will never sell it.", ["never sell"], [], ["member-rights.html"]),
    (
        "How long can I wait before I report an emergency hospital admission?",
        "Within 48 hours.",
        ["48 hours"],
        [],
        [B, S, G, "prior-authorization.md"],
    ),
    (
        "Who picks my primary care provider if I never choose one on Bronze?",
        "Acme Health assigns one.",
        ["assigns one"],
        [],
        ["provider-network.md"],
    ),
    (
        "How many mental health visits am I allowed in a year?",
        "There are no annual visit limits.",
        ["no annual visit limits"],
        [],
        ["mental-health.md"],
    ),
    (
        "What is the charge for the 988 crisis line?",
        "Call or text 988, the Suicide and Crisis Lifeline.",
        ["988"],
        [],
        ["mental-health.md"],
    ),
    ("How much does a trip to urgent care run on Bronze?", "A $75 copay.", ["$75"], ["$50", "$25"], [B, OV]),
    (
        "Is there any chance I'm billed extra by an out-of-network anesthesiologist at my in-network hospital?",
        "No: it is billed at in-network cost sharing.",
        ["in-network cost sharing"],
        [],
        ["provider-network.md"],
    ),
    ("How long does a completed prior authorization usually stay good?", "Usually 90 days.", ["90 days"], [], ["prior-authorization.md"]),
    ("Which pharmacy handles my specialty drugs?", "AcmeRx Specialty.", ["AcmeRx Specialty"], [], ["pharmacy-benefits.md"]),
    (
        "How long can I expect to wait for a complaint to be answered?",
        "Complaints are answered within 30 days.",
        ["30 days"],
        [],
        ["member-rights.html"],
    ),
]
DEV3_UNANSWERABLE = [
    "What does Silver pay for an ambulance ride to a routine appointment?",
    "How much is a semi-private hospital room on Bronze?",
    "Does Gold cover contact lens cleaning solution?",
    "What is the copay for a lab blood draw on Silver?",
    "How many massage sessions does Silver allow?",
    "Does Acme pay for replacement hearing aid batteries on Gold?",
    "What does Bronze charge for a flu test at a pharmacy?",
    "Is a home sleep apnea test covered on Gold?",
    "How much does Acme pay for a second breast pump?",
    "Does Silver cover an eye patch after surgery?",
    "What is the copay for a telehealth nutrition consult?",
    "How much does Gold pay for dental implants?",
    "Is there a copay for a travel health consultation on Silver?",
    "Does Acme cover a gym membership for weight loss?",
    "What does Bronze pay for a walking cane?",
]
DEV3_OFF_TOPIC = [
    "How do I repot an orchid?",
    "What's the capital of Australia?",
    "Write a haiku about the sea.",
    "How long should I boil an egg?",
    "Which credit card has the best travel rewards?",
]


# ---- held-out-4 (ADR 0126): written once from the policy documents and committed before any code ran
# on it; never tuned on. New wording styles: long multi-sentence member messages, a plan named in
# passing, comparisons between plans, and yes/no questions.
EXCL, PHARM, PA, MR = "exclusions.md", "pharmacy-benefits.md", "prior-authorization.md", "member-rights.html"
HELDOUT4_ANSWERABLE: list[tuple[Any, ...]] = [
    (
        (
            "Hi there. My son plays soccer and hurt his knee last weekend, and the orthopedic doctor wants him "
            "to do physical therapy for a couple of months. We signed up for Gold in November. How many PT "
            "visits will the plan pay for this year?"
        ),
        "Up to 20 visits per calendar year.",
        ["20 visits"],
        ["12 visits", "16 visits"],
        [G],
    ),
    (
        (
            "My husband, who is on Silver through my employer, needs to see a dermatologist about a mole. "
            "What is the copay for that kind of specialist?"
        ),
        "A specialist visit is a $60 copay.",
        ["$60"],
        ["$100", "$35"],
        [S, OV],
    ),
    (
        "Which of the three plans has the cheapest urgent care visit, and what does it cost?",
        "Gold: a $25 copay.",
        ["$25"],
        [],
        [OV, G],
    ),
    (
        "Does the Silver plan cover travel vaccines like yellow fever?",
        "Yes: travel vaccines are covered at no cost on Silver and Gold.",
        ["no cost"],
        [],
        [PHARM, "travel-coverage.md"],
    ),
    (
        "Is IVF covered if I'm on Silver?",
        "No: IVF is covered only on Gold.",
        [["only on Gold", "diagnostic testing and up to 3 cycles of ovulation induction"]],
        [],
        [EXCL, S],
    ),
    (
        (
            "I was on vacation in Mexico and had to go to a local ER for food poisoning. I paid in pesos out of "
            "pocket and kept the receipt. What currency rate does Acme use when they pay me back?"
        ),
        "Bills in another currency are converted at the exchange rate of the date of service.",
        ["exchange rate of the date of service"],
        [],
        [CLAIMS],
    ),
    (
        "Do I need prior authorization before getting an MRI?",
        "Yes: MRI, CT and PET scans need prior authorization.",
        ["MRI, CT and PET scans"],
        [],
        [PA],
    ),
    (
        "How much more is the monthly premium for Gold than for Silver?",
        "Gold is $568 a month and Silver $412.",
        ["$568", "$412"],
        [],
        [OV, G, S],
    ),
    (
        (
            "My mother lives with us and she has diabetes. Her podiatrist trims her toenails every couple of "
            "months. Is routine foot care like that covered for her?"
        ),
        "Routine foot care is not covered unless you have diabetes.",
        ["unless you have diabetes"],
        [],
        [EXCL],
    ),
    (
        (
            "I just started the Gold plan last month after moving states. If I keep seeing my old doctor, who "
            "isn't in Acme Choice, what deductible applies before the plan pays?"
        ),
        "A separate out-of-network deductible of $1,500 per member.",
        ["$1,500"],
        ["$6,000"],
        [G, "provider-network.md", "travel-coverage.md"],
    ),
    ("Are breast pumps free for new moms?", "Breast pumps are covered at no cost, one per pregnancy.", ["no cost"], [], [MATERNITY]),
    (
        (
            "Quick question about childbirth classes. My partner and I are expecting our first in the spring and "
            "we're on Silver. The hospital offers a breastfeeding class for $180. How much of that will Acme "
            "reimburse?"
        ),
        "Childbirth and breastfeeding classes are reimbursed up to $150 per pregnancy.",
        ["$150"],
        [],
        [MATERNITY],
    ),
    (
        "Between Bronze and Silver, which one lets me see doctors outside the network?",
        "Silver adds out-of-network coverage; Bronze does not cover out-of-network care.",
        [["out-of-network coverage", "cover out-of-network care at a lower level", "does not cover out-of-network care"]],
        [],
        [OV, "provider-network.md", B, S],
    ),
    (
        "Can I call the nurse line in the middle of the night?",
        "Yes: the Nurse Line is open 24 hours a day.",
        [["24-hour", "24 hours"]],
        [],
        ["telehealth-and-nurse-line.pdf", ENROL],
    ),
    (
        (
            "I've been paying toward my Bronze deductible since January, but I had a baby in June and want to "
            "switch to Gold. If I switch plans, do I lose what I've already put toward my deductible?"
        ),
        "No: what you already paid is credited to the new plan.",
        ["credited to the new plan"],
        [],
        [ENROL],
    ),
    (
        "While I'm at my kid's eye appointment I'd like my own eyes checked too; I have Silver. What's the copay for my exam?",
        "A routine adult eye exam is a $20 copay.",
        ["$20"],
        ["$0"],
        [S],
    ),
    (
        "Can someone else file an appeal for me, like my daughter?",
        "Yes: you may appoint someone, such as a family member or your doctor, to appeal for you.",
        ["appoint someone"],
        [],
        [CLAIMS],
    ),
    (
        "What's the difference in the family deductible between Bronze and Gold?",
        "Bronze $13,000 per family, Gold $1,000.",
        ["$13,000", "$1,000"],
        [],
        [OV, B, G],
    ),
    (
        (
            "My doctor prescribed a drug that isn't on the formulary, and she says the alternatives didn't work "
            "for me. She's sending an urgent exception request today because I can't go without it. When will "
            "Acme decide?"
        ),
        "Urgent exception requests are decided within 24 hours.",
        ["24 hours"],
        [],
        [PHARM],
    ),
    (
        "Does buprenorphine for opioid use disorder need prior authorization?",
        "No: medication for opioid use disorder needs no prior authorization.",
        ["no prior authorization"],
        [],
        ["mental-health.md"],
    ),
    (
        "My wife is on Gold and is having her baby in March. What will the delivery and hospital stay cost us?",
        "A $250 copay per admission, then 10% after the deductible.",
        ["$250"],
        [],
        [G, MATERNITY],
    ),
    (
        (
            "I'm worried about my privacy after a data breach at another company. I'd like to know who Acme has "
            "shared my medical information with. How many years back can I ask about?"
        ),
        "The past six years.",
        ["six years"],
        [],
        [MR],
    ),
    (
        "Is reconstructive surgery after a mastectomy covered?",
        "Yes: reconstructive surgery after an injury, an illness or a mastectomy is covered.",
        ["mastectomy is covered"],
        [],
        [EXCL],
    ),
    (
        "My PCP gave me a referral to a cardiologist in January. I'm on Bronze. How long is that referral good for?",
        "Referrals are valid for 6 months and up to 6 visits.",
        ["6 months"],
        [],
        ["provider-network.md"],
    ),
    (
        "If my internal appeal is denied and I go to an external review, will that cost me anything?",
        "No: external review costs you nothing.",
        ["costs you nothing"],
        [],
        [CLAIMS],
    ),
]
HELDOUT4_UNANSWERABLE = [
    "What is the copay for an acupuncture session on Gold?",
    "My doctor says I need a CPAP machine for sleep apnea. I'm on Bronze. How much will I pay for the machine?",
    "I'm on Silver and my twins need weekly allergy shots. Is there a copay per injection?",
    "Does Acme pay for a wheelchair ramp at my house?",
    "Is there a loyalty discount on premiums if I stay with Acme for five years?",
    "How many days in a skilled nursing facility does Silver cover each year?",
    "My father is on dialysis three times a week and can't drive. Does Acme pay for his rides to the clinic?",
    "Will Acme pay me back for sunscreen I bought at the drugstore?",
    "What is the copay for a doctor's home visit on Silver?",
    "How much does Acme pay toward a smoking cessation program?",
]
HELDOUT4_OFF_TOPIC = [
    "My landlord hasn't fixed the heating in three weeks and it's getting cold. What are my rights as a tenant?",
    "Can you suggest a name for my new bakery?",
    "Is it better to invest in index funds or individual stocks?",
    "What time zone is Tokyo in?",
    "My dog keeps chewing the couch when I leave the house. How do I stop it?",
    "Which is faster from Paris to London, the train or a flight?",
    "Summarize the plot of Hamlet in three sentences.",
    "How many ounces are in a cup?",
    "I'm planning a birthday party for my 8-year-old. Any game ideas?",
    "What's the best way to learn Python programming?",
]


# ---- dev-4 (ADR 0126): development questions for unit selection in the styles of held-out-4 (long
# multi-sentence messages, a plan named in passing, comparisons, yes/no questions), on other facts.
# Written after held-out-4 was committed, never copied from it; weights may be tuned on it.
DEV4_ANSWERABLE: list[tuple[Any, ...]] = [
    (
        (
            "Hello! I hurt my lower back lifting boxes when we moved last month. My friend swears by her "
            "chiropractor. I have the Silver plan. How many chiropractor visits can I get in a year?"
        ),
        "Up to 12 visits per calendar year.",
        ["12 visits"],
        ["20 visits"],
        [S],
    ),
    (
        "My rheumatologist is starting me on a biologic that's a Tier 4 drug. I'm on Gold. What's the most I'd pay per fill?",
        "20% up to $250 per fill.",
        ["$250"],
        ["$350", "$500"],
        [G, PHARM],
    ),
    (
        (
            "We had a rough year with two surgeries in the family and I'm on Bronze. What is the most I could "
            "possibly pay out of pocket as one member?"
        ),
        "$9,200 per member.",
        ["$9,200"],
        ["$7,500", "$4,000"],
        [B, OV],
    ),
    (
        "Is the deductible waived for a video visit with a doctor?",
        "The deductible does not apply to telehealth visits.",
        ["does not apply"],
        [],
        ["telehealth-and-nurse-line.pdf"],
    ),
    (
        "I don't really click with the primary care doctor I picked. We're on Bronze. How often am I allowed to switch?",
        "You can change your PCP once a month.",
        ["once a month"],
        [],
        ["provider-network.md"],
    ),
    (
        (
            "I'm pregnant with my second and planning to deliver at St. Mary's. By which week of the pregnancy "
            "should I tell Acme about the planned admission?"
        ),
        "By the 30th week of pregnancy.",
        ["30th week"],
        [],
        [MATERNITY],
    ),
    (
        "Does Gold help pay for hearing aids for my dad, who is on my plan?",
        "Up to $1,500 per ear every 36 months.",
        ["$1,500"],
        [],
        [G],
    ),
    (
        (
            "We're going hiking in Peru next summer and I'm on Gold. If I get hurt in the mountains, how much "
            "will the plan pay to get me to a hospital?"
        ),
        "Medical evacuation up to $50,000 per trip.",
        ["$50,000"],
        [],
        ["travel-coverage.md"],
    ),
    (
        "On Bronze, do I need a referral before I see a dermatologist?",
        "Yes: you need a referral from your PCP before you see a specialist.",
        [["need a referral", "needs a referral"]],
        [],
        [B, "provider-network.md"],
    ),
    (
        "Which plan has the lowest copay for the emergency room, and how much is it?",
        "Gold: $150.",
        ["$150"],
        [],
        [OV, G],
    ),
    (
        "Compare the monthly premiums of Bronze and Silver for me.",
        "Bronze $289, Silver $412.",
        ["$289", "$412"],
        [],
        [OV],
    ),
    (
        (
            "My paper card went through the washing machine. I ordered a new one in the app this morning. How "
            "many days until it shows up in the mail?"
        ),
        "It arrives in 7 to 10 days.",
        ["7 to 10 days"],
        [],
        [ENROL],
    ),
    (
        (
            "Money has been tight since I lost a few shifts at work, and I missed my premium this month. How "
            "long is the grace period before I lose coverage?"
        ),
        "A grace period of 31 days.",
        ["31 days"],
        [],
        [ENROL],
    ),
    (
        "What's the difference between the Silver and Gold specialist copays?",
        "Silver $60, Gold $35.",
        ["$60", "$35"],
        [],
        [OV, S, G],
    ),
    (
        "Can I get IVF on the Gold plan, and how many rounds?",
        "Up to 2 IVF cycles per lifetime.",
        [["2 IVF cycles", "2 cycles"]],
        [],
        [G, EXCL],
    ),
    (
        "Is weight-loss surgery covered at all?",
        "Bariatric surgery is covered only with prior authorization when a BMI of 40 or more is documented.",
        ["prior authorization"],
        [],
        [EXCL],
    ),
    (
        "My teenage daughter has been really down lately and said something that scared me tonight. Who can we call or text right now?",
        "Call or text 988, the Suicide and Crisis Lifeline.",
        ["988"],
        [],
        ["mental-health.md"],
    ),
    (
        "I moved to a new apartment across town last week. I'm on Silver. How long do I have to tell Acme about my new address?",
        "Within 30 days.",
        ["30 days"],
        [],
        [MR],
    ),
    (
        (
            "I mailed in a claim for a doctor I saw while visiting my sister out of state, with the itemized "
            "bill and my receipt. How long does Acme usually take to process it?"
        ),
        "Complete claims are processed within 30 days.",
        ["30 days"],
        [],
        [CLAIMS],
    ),
    (
        "Do out-of-network balance bills count toward my out-of-pocket maximum on Silver?",
        "No: balance-billed amounts do not count toward it.",
        [["do not count", "never counts"]],
        [],
        [S],
    ),
]
DEV4_UNANSWERABLE = [
    "My son needs braces and the orthodontist quoted us $5,000. We're on Gold. How much of that will Acme pay?",
    "Is there a copay for a flu shot given at my doctor's office rather than the pharmacy on Bronze?",
    "Does Silver cover a hospital-grade air purifier for my asthma?",
    "I'm a vegetarian and want to see a dietitian about iron levels. What's the copay on Gold?",
    "How many sessions of laser hair removal does Acme cover?",
    "Does Bronze pay for a stay at a sober living house after rehab?",
]
DEV4_OFF_TOPIC = [
    "My car is making a grinding noise when I brake. What could it be?",
    "Can you recommend a good book for a long flight?",
    "What's the difference between baking soda and baking powder?",
    "How do I set up a new Wi-Fi router?",
]


def development() -> list[dict[str, Any]]:
    return _rows("dev2", DEV_ANSWERABLE, DEV_UNANSWERABLE, DEV_OFF_TOPIC)


def heldout() -> list[dict[str, Any]]:
    return _rows("ho2", HELDOUT_ANSWERABLE, HELDOUT_UNANSWERABLE, HELDOUT_OFF_TOPIC)


def development3() -> list[dict[str, Any]]:
    return _rows("dev3", DEV3_ANSWERABLE, DEV3_UNANSWERABLE, DEV3_OFF_TOPIC)


def heldout3() -> list[dict[str, Any]]:
    return _rows("ho3", HELDOUT3_ANSWERABLE, HELDOUT3_UNANSWERABLE, HELDOUT3_OFF_TOPIC)


def heldout4() -> list[dict[str, Any]]:
    return _rows("ho4", HELDOUT4_ANSWERABLE, HELDOUT4_UNANSWERABLE, HELDOUT4_OFF_TOPIC)


def development4() -> list[dict[str, Any]]:
    return _rows("dev4", DEV4_ANSWERABLE, DEV4_UNANSWERABLE, DEV4_OFF_TOPIC)


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main() -> None:
    write(HERE / "grounding-dev-2.jsonl", development())
    write(HERE / "heldout" / "assistant-eval-2.jsonl", heldout())
    write(HERE / "heldout" / "assistant-eval-3.jsonl", heldout3())
    write(HERE / "grounding-dev-3.jsonl", development3())
    write(HERE / "heldout" / "assistant-eval-4.jsonl", heldout4())
    write(HERE / "grounding-dev-4.jsonl", development4())


if __name__ == "__main__":
    main()
