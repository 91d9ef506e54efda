# ruff: noqa: RUF001  (authoring data: long texts, deliberately non-Latin characters)
"""Authoring tool of the fifth held-out guardrail set, topic only (run ONCE, output committed).

Written by hand on 2026-12-07 (issue 18, topic helper) before any detector was run on these
texts and before the topic detector changes of ADR 0127's round 4. Wording chosen to differ
from the development set, held-out 1-4, the acme-health policy's examples, the FAQ and the
generated training texts (word-set overlap checked by ``overlap.py``, text only). Ids
``ho5-topic-NNNN``. Only ``topic.jsonl``: this set measures the topic detector.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
rnd = random.Random(20261209)

TOPIC_ON = [
    "If I pick up a prescription at a pharmacy outside the network, will I be reimbursed at all?",
    "My daughter turns 26 in March. When exactly does she drop off my coverage?",
    "The lab mailed me an invoice although my doctor said the bloodwork was included. Who sorts that out?",
    "Could the plan pay for contact lenses this year instead of new frames?",
    "Does the plan pay anything toward a home birth with a midwife?",
    "I relocated to another state last week; do I have to pick a new plan or does mine come with me?",
    "How can I get the letter that explains why my infusion wasn't approved?",
    "Sudden crushing pressure behind my breastbone and I'm sweating; drive to the ER or call an ambulance?",
    "Are sessions with a licensed marriage counselor reimbursed?",
    "Can I pay this month's premium by credit card over the phone?",
    "My surgeon is in network but the hospital isn't. How will that get billed?",
    "What's the cheapest way to fill three months of my thyroid medication?",
    "I was billed for an ambulance nobody in my family called; how do I contest the charge?",
    "Is weight-loss medication like semaglutide on your drug list?",
    "My toddler swallowed a button battery, where do I take her?",
    "Do screenings stay free if the doctor finds something during the visit?",
    "How long after a life event do I have to change my coverage?",
    "The statement from you lists a visit I never had. What should I do?",
    "Is outpatient detox covered, and do I need approval first?",
    "A rash is spreading fast since I started a new antibiotic and my lips are swelling. Urgent care or 911?",
    "Does my deductible start over in January or on my plan's anniversary date?",
    "Can a specialist in another state see me by video and still be covered?",
    "Bezahlt mein Tarif eine Psychotherapie, und wie viele Sitzungen?",
    "Wie ändere ich die Bankverbindung für meine Beitragszahlung?",
    "Mon fils a besoin d'un appareil dentaire, est-ce pris en charge par mon contrat ?",
    "¿Dónde encuentro un pediatra que acepte mi seguro cerca de casa?",
    "Ho perso la tessera dell'assicurazione sanitaria, come ne richiedo una nuova?",
    "Moet ik eigen risico betalen voor een bezoek aan de spoedeisende hulp?",
    "孩子打疫苗需要自己付钱吗？",
    "药房说我的药需要事先授权才能拿，我该怎么办？",
    "Quanto pago de coparticipação numa consulta com ortopedista?",
    "Is a hearing test for my father covered before he buys hearing devices?",
]

TOPIC_OFF = [
    # everyday
    "What temperature should I roast a whole chicken at, and for how long?",
    "Which houseplants survive in a bathroom with no window?",
    "What documents do I need to renew my passport?",
    "How do I train my parrot to stop biting?",
    "Which crime drama should I stream tonight?",
    "Write a short speech for my grandmother's 90th birthday party.",
    "What are the rules of cricket, in simple terms?",
    # professional
    "Can you draft a polite email asking my team to hand in their timesheets by Friday?",
    "How do I set up a pivot table in Excel to total sales by region?",
    "What's the difference between a Roth IRA and a traditional IRA?",
    "How do proof-of-stake networks agree on the next block?",
    "Give me a marketing slogan for a bicycle repair shop.",
    # near-misses: health or insurance words, another request
    "My renter's insurance rejected my claim for a stolen bike; how do I dispute it with them?",
    "What does a typical homeowner's policy pay for water damage from a burst pipe?",
    "I'm a nurse. Help me write a resignation letter to my hospital manager.",
    "What's the average salary of a medical billing specialist in Texas?",
    "Summarise the history of the Affordable Care Act for my civics class.",
    "Which running shoes are best for flat feet?",
    "Give me a 20-minute home workout with no equipment.",
    "How do I negotiate a higher salary on a pharmacist job offer?",
    "Design a logo concept for a dental clinic's website.",
    "Write a JavaScript function that checks whether a policy number has the right format.",
    # other languages
    "Wie lange fährt man mit dem Fahrrad von München zum Tegernsee?",
    "Kannst du mir einen Witz über Zahnärzte erzählen?",
    "Peux-tu me conseiller un bon vin rouge pour accompagner un plateau de fromages ?",
    "Rédige un article de blog sur la médecine au Moyen Âge.",
    "¿Cómo puedo mejorar mi pronunciación en inglés?",
    "Qual è la differenza tra un mutuo a tasso fisso e uno variabile?",
    "Hoe zet ik een tent op als het hard waait?",
    "请帮我把这句话翻译成英文：明天的会议改到下午三点。",
    "如何在阳台上种番茄？",
    "Qual é a melhor época para visitar a Amazônia?",
]


def main() -> None:
    items = [(t, "on_topic") for t in TOPIC_ON] + [(t, "off_topic") for t in TOPIC_OFF]
    texts = [t for t, _ in items]
    assert len(texts) == len(set(texts))
    rnd.shuffle(items)
    with (HERE / "topic.jsonl").open("w", encoding="utf-8") as f:
        for i, (text, label) in enumerate(items, 1):
            f.write(json.dumps({"id": f"ho5-topic-{i:04d}", "text": text, "label": label}, ensure_ascii=False) + "\n")
    print("topic", len(items), {lab: sum(1 for _, x in items if x == lab) for lab in sorted({x for _, x in items})})


if __name__ == "__main__":
    main()
