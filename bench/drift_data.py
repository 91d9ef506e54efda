"""Synthetic windows for the drift benchmark, built offline from the Acme Health data.

The reference is what the serving model was trained on: the 303 user questions of
``examples/acme-health/faq.jsonl``. Everything else is split in two, and the ``heldout`` split
is never looked at while choosing the methods' defaults:

no shift (paraphrases of the reference questions, covering every fact)
  dev      the 60 held-out FAQ questions of ``faq-eval.jsonl`` + the training questions
           rewritten by template set A (greetings, thanks, "quick question", lower case, ...)
  heldout  the 41 held-out FAQ questions that ``build_corpus.py`` writes nowhere, the 61
           retrieval questions of ``questions.jsonl``, + the training questions rewritten by
           template set B (other greetings, typos, "as a member", ...)

shifts
  benefits  questions about benefits the plans do not have (LASIK, pet cover, gym, ...):
            benefit lists and question templates differ between the splits
  language  the same kind of questions in another language: Spanish and French (dev),
            German, Portuguese and Italian (heldout)
  domain    another domain: questions about other kinds of insurance, banking, cooking and
            home repair (dev) or software, sport, books, science and travel (heldout)
  broad     (reported, no target) real-looking member questions about things the FAQ does not
            cover (plan changes, billing, documents)

Everything is in this repository (``examples/acme-health`` and the lists below): nothing is
read from outside the checkout.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACME = ROOT / "examples" / "acme-health"
PLANS = ("Bronze", "Silver", "Gold")


def _user(row: dict) -> str:
    return next(m["content"] for m in row["messages"] if m["role"] == "user")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def reference() -> list[str]:
    """The training questions (what the lineage's dataset holds)."""
    return [_user(r) for r in _jsonl(ACME / "faq.jsonl")]


def _lower_first(q: str) -> str:
    return q[0].lower() + q[1:] if q and not q[:2].isupper() else q


def _typo(q: str, rng: random.Random) -> str:
    words = q.split()
    long = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    if not long:
        return q
    i = rng.choice(long)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


_TEMPLATES_A = (
    lambda q, r: f"Hi, {q}",
    lambda q, r: f"Hello! {q}",
    lambda q, r: f"{q} Thanks.",
    lambda q, r: f"{q} Thank you!",
    lambda q, r: f"Quick question: {_lower_first(q)}",
    lambda q, r: f"Can you tell me: {_lower_first(q)}",
    lambda q, r: q.lower().rstrip("?"),
    lambda q, r: f"I'm an Acme member. {q}",
)
_TEMPLATES_B = (
    lambda q, r: f"Hey there, {_lower_first(q)}",
    lambda q, r: f"{q} Appreciate it.",
    lambda q, r: f"One more thing - {_lower_first(q)}",
    lambda q, r: f"Could you help? {q}",
    lambda q, r: _typo(q, r),
    lambda q, r: f"As a member, {_lower_first(q)}",
    lambda q, r: f"{q.rstrip('?')}??",
    lambda q, r: f"Good morning. {q}",
)


def _heldout_questions() -> list[str]:
    """All 101 held-out FAQ questions (faq-eval.jsonl has 60 of them)."""
    sys.path.insert(0, str(ACME))
    try:
        import build_corpus  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    return [held for _qs, held, _a in build_corpus.faq_facts()]


def no_shift(split: str) -> list[str]:
    ref = reference()
    rng = random.Random(f"no-shift-{split}")
    templates = _TEMPLATES_A if split == "dev" else _TEMPLATES_B
    out = [t(q, rng) for q in ref for t in templates]
    evaluated = {_user(r) for r in _jsonl(ACME / "faq-eval.jsonl")}
    if split == "dev":
        natural = sorted(evaluated)
    else:
        natural = [q for q in _heldout_questions() if q not in evaluated]
        natural += [r["question"] for r in _jsonl(ACME / "questions.jsonl")]
    # the natural paraphrases weigh as much as the templated ones in a window
    return out + natural * max(1, len(out) // max(1, len(natural)))


_BENEFITS = {
    "dev": (
        "LASIK eye surgery",
        "pet insurance for my dog",
        "a gym membership",
        "dental implants",
        "a hair transplant",
        "teeth whitening",
        "cryotherapy sessions",
        "a home sauna",
        "a massage chair",
        "a weight-loss camp",
        "vitamin supplements",
        "Botox injections",
        "tattoo removal",
        "egg freezing",
        "an ancestry DNA test",
        "a sleep tracker",
    ),
    "heldout": (
        "acupuncture",
        "hearing aids",
        "a nursing home stay",
        "chiropractic adjustments",
        "braces for adults",
        "a personal trainer",
        "a spa weekend",
        "a smartwatch",
        "laser hair removal",
        "an air purifier",
        "meal delivery",
        "a hot tub",
        "nutrition coaching",
        "hypnotherapy",
        "a yoga retreat",
        "reiki healing",
    ),
}
_BENEFIT_TEMPLATES = {
    "dev": (
        "Does the {plan} plan cover {b}?",
        "Will Acme pay for {b}?",
        "How much is {b} with {plan}?",
        "Is {b} included in my {plan} benefits?",
        "What's my copay for {b} on {plan}?",
        "Do I need prior authorization for {b}?",
    ),
    "heldout": (
        "Can I get {b} reimbursed on {plan}?",
        "Is there coverage for {b} under {plan}?",
        "Do I get a discount on {b} as a {plan} member?",
        "Is {b} a covered benefit?",
        "What does {plan} pay toward {b}?",
        "Which plan includes {b}?",
    ),
}


def benefits(split: str) -> list[str]:
    return [
        t.format(plan=p, b=b) for b in _BENEFITS[split] for t in _BENEFIT_TEMPLATES[split] for p in PLANS if "{plan}" in t or p == "Gold"
    ]


_LANGUAGE = {
    "dev": (
        # Spanish
        "¿Cuál es el deducible del plan {plan}?",
        "¿Cuánto cuesta una visita al especialista con {plan}?",
        "¿Cuál es el máximo de gastos de bolsillo en {plan}?",
        "¿Necesito una referencia para ver a un especialista con el plan {plan}?",
        "¿Cuánto pago en urgencias con {plan}?",
        "¿El plan {plan} cubre las vacunas para viajar?",
        "¿Cómo presento un reclamo?",
        "¿Cuándo es el período de inscripción abierta?",
        "¿Cuánto cuesta la prima mensual del plan {plan}?",
        "¿Qué medicamentos cubre el plan {plan}?",
        # French
        "Quelle est la franchise du plan {plan} ?",
        "Combien coûte une consultation chez un spécialiste avec {plan} ?",
        "Quel est le plafond annuel de dépenses avec le plan {plan} ?",
        "Le plan {plan} couvre-t-il les soins à l'étranger ?",
        "Comment contester un refus de remboursement ?",
        "Ai-je besoin d'une autorisation préalable pour une IRM ?",
        "Combien coûte la téléconsultation avec {plan} ?",
        "Quels médicaments sont remboursés par le plan {plan} ?",
        "Comment changer de médecin traitant ?",
        "Quelle est la cotisation mensuelle du plan {plan} ?",
    ),
    "heldout": (
        # German
        "Wie hoch ist die Selbstbeteiligung im {plan}-Tarif?",
        "Was kostet ein Facharztbesuch mit {plan}?",
        "Brauche ich eine Überweisung für den Facharzt im {plan}-Tarif?",
        "Übernimmt der {plan}-Tarif Reiseimpfungen?",
        "Wie reiche ich eine Rechnung ein?",
        "Wann kann ich meinen Tarif wechseln?",
        "Was zahle ich in der Notaufnahme mit {plan}?",
        # Portuguese
        "Qual é a franquia do plano {plan}?",
        "Quanto custa uma consulta com especialista no plano {plan}?",
        "O plano {plan} cobre vacinas de viagem?",
        "Como faço para pedir reembolso?",
        "Preciso de autorização prévia para uma ressonância?",
        "Qual é o limite anual de despesas no plano {plan}?",
        # Italian
        "Qual è la franchigia del piano {plan}?",
        "Quanto costa una visita specialistica con il piano {plan}?",
        "Il piano {plan} copre le cure all'estero?",
        "Come presento una richiesta di rimborso?",
        "Quando posso cambiare piano?",
        "Quanto pago al pronto soccorso con il piano {plan}?",
        "Serve un'autorizzazione per la risonanza magnetica?",
    ),
}


def language(split: str) -> list[str]:
    out: list[str] = []
    for t in _LANGUAGE[split]:
        out += [t.format(plan=p) for p in PLANS] if "{plan}" in t else [t]
    return out


_DOMAIN = {
    "dev": (
        "What does my car insurance deductible cover after an accident?",
        "Is hail damage to my car covered by comprehensive insurance?",
        "How do I file a claim for a stolen bicycle under renters insurance?",
        "Does homeowners insurance cover a burst pipe in the basement?",
        "How much life insurance should a family of four buy?",
        "What is the interest rate on a 30-year fixed mortgage?",
        "How do I dispute a charge on my credit card?",
        "What's the minimum balance for a savings account?",
        "How do I roll over my 401(k) to a new employer?",
        "Can I get a refund for a cancelled flight?",
        "How long should I boil an egg for a runny yolk?",
        "What's a good substitute for buttermilk in pancakes?",
        "How do I make sourdough starter from scratch?",
        "Which wine goes with grilled salmon?",
        "How do I fix a leaking kitchen faucet?",
        "What is the best way to paint a bedroom ceiling?",
        "Kannst du mir ein Rezept für Apfelstrudel geben?",
        "How do I lower my electricity bill in winter?",
        "What's the cheapest way to send money abroad?",
        "Does travel insurance cover a missed connection?",
        "How do I replace a broken tile in the bathroom?",
        "What temperature should I roast a chicken at?",
        "Is it better to lease or buy a car?",
        "How do I unclog a drain without chemicals?",
    ),
    "heldout": (
        "Write a Python script that renames every file in a folder.",
        "Why does my JavaScript promise never resolve?",
        "How do I undo the last git commit but keep the changes?",
        "Explain the difference between TCP and UDP.",
        "Who won the football World Cup in 2014?",
        "How many players are on a basketball team?",
        "What are the rules of cricket in simple terms?",
        "Recommend a fantasy novel for a twelve-year-old.",
        "What's the plot of Hamlet in three sentences?",
        "How far is the Moon from the Earth?",
        "What causes the northern lights?",
        "Translate 'good morning' into Japanese.",
        "How do I train my puppy to stop biting?",
        "What should I pack for a week of hiking in Scotland?",
        "How do I change a flat tire on my bike?",
        "What is the capital of Australia?",
        "Help me write a complaint letter to my landlord about mold in the bathroom.",
        "Summarise the causes of the First World War.",
        "What is a good beginner chess opening?",
        "How do I set up a Python virtual environment?",
        "Which telescope should I buy for stargazing?",
        "What's the difference between a violin and a viola?",
        "How do solar panels work?",
        "Suggest a name for my new coffee shop.",
    ),
}


_BROAD = {
    "dev": (
        "Do you offer dental-only plans?",
        "Can I add my newborn to my plan mid-year?",
        "Why was my premium higher this month?",
        "Where do I find my member ID card in the app?",
        "Can I pay my premium by direct debit?",
        "How do I update my mailing address?",
        "Is my plan an HMO or a PPO?",
        "Can I keep my plan if I move to another state?",
        "How do I get a copy of my 1095 tax form?",
        "Who do I call if my doctor leaves the network?",
        "Can my spouse use my login?",
        "How do I cancel my plan?",
    ),
    "heldout": (
        "How do I read my explanation of benefits?",
        "Can I switch plans after a job change?",
        "Why did I get a bill from the lab?",
        "Where can I download my claim history?",
        "Can I name someone to talk to you on my behalf?",
        "How long does a claim take to process?",
        "Is there a grace period if I pay my premium late?",
        "How do I order a replacement card?",
        "Can I get my documents in large print?",
        "Do you have a nurse line I can call at night?",
        "How do I appeal a premium increase?",
        "Can my adult child stay on my plan?",
    ),
}


def domain(split: str) -> list[str]:
    return list(_DOMAIN[split])


def broad(split: str) -> list[str]:
    return list(_BROAD[split])


SHIFTS = {"benefits": benefits, "language": language, "domain": domain}


def pools(split: str) -> dict[str, list[str]]:
    out = {"no_shift": no_shift(split), **{name: fn(split) for name, fn in SHIFTS.items()}, "broad": broad(split)}
    return out


if __name__ == "__main__":
    print(len(reference()), "reference questions")
    for split in ("dev", "heldout"):
        for name, texts in pools(split).items():
            print(split, name, len(texts), len(set(texts)), "e.g.", texts[len(texts) // 2])
