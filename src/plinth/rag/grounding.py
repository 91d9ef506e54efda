"""Grounded answers: select the passage sentence or table row that answers, quote it, cite it.

With ``grounding: strict`` on a knowledge-base attachment the answer is not generated: the
served passages are cut into *units* (sentences, list items, table rows phrased with their
column headers), each unit is scored against the question — word overlap of the question's
key terms (IDF-weighted over the units, light stemming, a small synonym table) plus MiniLM
cosine similarity — and the best unit (and a second one when it scores close) is quoted with
its citation number. The scoring reads the question as a member writes it (ADR 0126): the sentence
that asks weighs more than the story told before it, a unit that holds what the question asks for
(an amount, a duration, a count, a yes/no statement) scores more, and so does a unit about the plan
the question names. Every figure in such an answer is, by construction, a figure of a cited
passage.

The answer is "I don't know" (pointing to member services, with the phone number the
knowledge base gives for them) when

- too little of the question's key terms appears in the served passages (``min_coverage``):
  the documents do not talk about it (acupuncture, banana bread). A missing term weighs by its
  role (ADR 0123): little when it is a common word where a verb stands ("what do I owe"), more
  when it narrows a term the passages have ("an ambulance ride"); optionally (``plain_rank``,
  ADR 0130, off by default) little when it is any everyday word ("the damage", "any chance"); or
- the best unit scores below ``min_score``; or
- the answer's confidence — a logistic model of the coverage and the best unit's score
  (``answer_model``, ADR 0129) — is below ``min_confidence``: a high coverage lets a lower
  score through and the other way round, where two separate floors refused either. Fitted and
  calibrated on the development questions (``bench/grounding.py``).

Nothing here calls the model, so the whole answer exists before the first byte is streamed;
the serving layer streams it like any stage answer.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plinth.rag.plans import PlanQuery, plans_named

#: grounding modes of a knowledge-base attachment
MODES = ("strict", "off")

_WORD = re.compile(r"\$?\d[\d,.]*%?|[^\W\d_]+(?:-[^\W\d_]+)*", re.UNICODE)
_CONTRACTION = re.compile(r"(?<=[a-z])'(?:re|s|ve|ll|d|m|t)\b")
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“$])")
_PHONE = re.compile(r"(?<![\d-])(?:\+?1[-. ])?(?:\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\d-])")

_STOP = frozenset(
    """a an the and or but if then than so to of in on at by for with from as is are was were be been being am do does did
    have has had having it its this that these those there here which who whom whose what when where why how i you he she we
    they me him her us them my your his our their mine yours not no yes can could will would shall should may might must also
    just only very more most less least some any all each every other such own same both either neither into about over under
    again further once up down out off too s t don doesn didn isn aren wasn weren won wouldn shouldn please thank thanks hope
    help let know sure okay ok well get got like ask per via i'm im ive i've id i'd dont does much many long soon often quickly
    fast tell want need say said go going anything something someone way kind happen happens happened getting myself yourself
    now right one ones whether still even really actually currently able there's what's whats it's thing things use using
    before after during while since until""".split()
)
#: words every insurance question uses: they say nothing about *what* is asked
_GENERIC = frozenset(
    """plan plans cover covers covered coverage pay pays paid paying cost costs price charge charged acme health insurance
    insurer member members policy year yearly annual annually time number much give gives money amount person people single
    individual deadline cheaper cheapest lower save saving option options rate rates amount lowest highest higher least
    biggest smallest""".split()
)
#: a small domain synonym table: each word maps to the canonical terms it stands for
SYNONYMS: dict[str, tuple[str, ...]] = {
    "c-section": ("cesarean",),
    "csection": ("cesarean",),
    "caesarean": ("cesarean",),
    "caesarian": ("cesarean",),
    "cesarian": ("cesarean",),
    "physio": ("physical", "therapy"),
    "physiotherapy": ("physical", "therapy"),
    "physiotherapist": ("physical", "therapy"),
    "pt": ("physical", "therapy"),
    "chiropractor": ("chiropractic",),
    "pills": ("drug",),
    "pill": ("drug",),
    "medication": ("drug",),
    "medications": ("drug",),
    "medicine": ("drug",),
    "medicines": ("drug",),
    "meds": ("drug",),
    "prescription": ("drug",),
    "prescriptions": ("drug",),
    "er": ("emergency",),
    "a&e": ("emergency",),
    "approval": ("approval", "authorization"),
    "preauthorization": ("prior", "authorization"),
    "pre-authorization": ("prior", "authorization"),
    "preauth": ("prior", "authorization"),
    "pre-approval": ("prior", "authorization"),
    "preapproval": ("prior", "authorization"),
    "gp": ("primary", "care"),
    "pcp": ("primary", "care"),
    "shot": ("vaccine",),
    "shots": ("vaccine",),
    "jab": ("vaccine",),
    "jabs": ("vaccine",),
    "vaccination": ("vaccine",),
    "spectacles": ("glasses",),
    "eyeglasses": ("glasses",),
    "optometrist": ("eye",),
    "ivf": ("vitro", "fertilization"),
    "rehab": ("rehabilitation",),
    "oop": ("out-of-pocket",),
    "baby": ("newborn",),
    "psychiatrist": ("mental",),
    "therapist": ("therapy",),
    "counselling": ("counseling",),
    "video": ("telehealth",),
    "virtual": ("telehealth",),
    "abroad": ("outside",),
    "overseas": ("outside",),
    "copayment": ("copay",),
    "session": ("visit",),
    "sessions": ("visit",),
    "appointment": ("visit",),
    "appointments": ("visit",),
    "co-pay": ("copay",),
    "switch": ("change",),
}
#: words that frame a question rather than say what it asks — who it is for, when, the verbs
#: of asking ("my daughter twisted her ankle tonight", "once I hit my deductible"): they count
#: when a passage has them and are never held against the question when none has
FRAMING = frozenset(
    """kid kids child children son sons daughter daughters baby babies wife husband spouse partner mom mum dad mother father
    parent parents brother sister friend boyfriend girlfriend family household little young old new normal regular usual
    ordinary whole total combined actual basically approximately roughly exactly tonight today tomorrow yesterday morning
    evening night weekend weekday monday tuesday wednesday thursday friday saturday sunday week last next ago recently
    already later soon hit met meet meets reach reached done finished see seeing visit go went come came take
    took make made put pick choose find look check keep send sent handle work works worked live living stay back far near
    home trip vacation holiday twisted hurt broke broken sick ill badly seriously really bad worse good best fine lot bit
    anything nothing everything anyone thing stuff guy guys folks wondering wonder curious question quick bounce bounces
    bounced gets getting rule sign signing through copay copays ankle ankles wrist wrists knee knees elbow shoulder arm arms
    leg legs hand hands finger fingers toe toes neck hip sprain sprained twist fell fall fallen fractured injured injury
    bruised cut lost lose losing forgot forget forgotten misplaced thoughts thought thinking feel feeling feelings""".split()
)
#: members' words for what the documents call otherwise, derived from the documents' own
#: headings, table labels and terms: a phrase of the question (regular expression) and the
#: document words it stands for. Used for the key-term check and appended to the search query.
LAY_TERMS: tuple[tuple[str, str], ...] = (
    (
        (
            r"family doctor|family physician|regular doctor|usual doctor|own doctor|normal doctor|general practitioner|gp|pcp"
            r"|primary doctor|primary physician|check-?ups?"
        ),
        "primary care",
    ),
    (r"walk-?in(?: clinic| centre| center)?|after-?hours? (?:clinic|doctor)|urgent ?care clinic|minute clinic", "urgent care"),
    (r"er|a&e|emergency department|casualty|emergency room", "emergency room"),
    (r"specialists?|speclists?|specalists?|dermatologists?|cardiologists?|oncologists?|neurologists?|orthopedists?", "specialist"),
    (
        (
            r"counsel(?:l)?ing|counsel(?:l)?ors?|psychologists?|psychiatrists?|psychotherapy|anxiety|depression|mental health"
            r"|talk therapy|therapist for"
        ),
        "mental health therapy psychiatry",
    ),
    (
        (
            r"tummy tucks?|facelifts?|face lifts?|nose jobs?|rhinoplasty|liposuction|boob jobs?|breast (?:augmentation|implants?)"
            r"|botox for wrinkles|cosmetic"
        ),
        "cosmetic surgery appearance",
    ),
    (r"glasses|spectacles|eyeglasses|eyewear|frames|lenses|contacts|contact lenses", "glasses contact lenses allowance"),
    (r"eye (?:test|exam|checkup|check-up|doctor)s?|vision (?:test|exam|screening)s?|optometrist", "eye exam"),
    (r"hearing aids?|hearing devices?", "hearing aids"),
    (r"brand[- ]name|name[- ]brand|branded", "brand"),
    (r"generics?|generic (?:drugs?|meds?|medicines?|pills)", "generic"),
    (r"biologics?|infusions?|specialty (?:meds?|medications?|medicines?|drugs?)", "specialty drugs tier 4"),
    (r"out of pocket|oop|out-of-pocket", "out-of-pocket"),
    (r"cap|ceiling|most i (?:could|would|will|can)? ?(?:ever )?pay|max(?:imum)?|upper limit|limit on what i pay", "maximum"),
    (r"percentage|percent|what share|my share|portion|cost share|% of", "coinsurance"),
    (r"hospital bill|surgery bill|operation|surgery|surgeries|hospital stay|hospitali[sz]ed|admitted", "hospital surgery"),
    (r"per month|a month|each month|every month|monthly (?:cost|fee|payment|price|charge|bill)s?", "monthly premium"),
    (r"hmo|ppo|epo|plan type|kind of plan|type of plan", "plan type epo ppo network"),
    (r"ob-?gyns?|gyn(?:a)?ecologists?|obstetricians?", "ob-gyn"),
    (r"newborn|new baby|son was born|daughter was born|baby was born|gave birth|had a baby|just born", "newborn birth"),
    (r"adopt(?:ed|ing|ion)?", "adoption child"),
    (r"married|marriage|wedding|got hitched|divorce[d]?", "marriage qualifying life event"),
    (
        r"lost (?:my |the )?(?:job|insurance|coverage)(?! card)|laid off|employer coverage|coverage (?:through|from) work|work insurance",
        "losing other coverage qualifying life event",
    ),
    (r"moved|moving|relocat(?:e|ed|ing)|new (?:state|city|area|address)", "moving new area"),
    (
        (
            r"bounced?|bounces|(?:pay|paid|paying) (?:my |the |a )?(?:premiums? |bill )?late|missed (?:a |my )?payment"
            r"|didn't pay|don't pay|unpaid|late payment|pay late|paid late|behind on"
        ),
        "grace period unpaid premium",
    ),
    (r"turned down|rejected|refused|declined|denied", "denied denial"),
    (r"fight|challenge|dispute|contest|complain about a decision|overturn", "appeal"),
    (
        (
            r"pre-?approv(?:al|ed)|(?:need )?approv(?:al|ed)(?: first| beforehand| in advance| before)?|ok(?:ay)? first|sign-?off"
            r"|pre-?auth(?:orization)?|prior auth"
        ),
        "prior authorization",
    ),
    (r"wheelchairs?|walkers?|crutches|hospital beds?|cpap|oxygen equipment|medical equipment", "durable medical equipment"),
    (
        (
            r"abroad|overseas|foreign|another country|out of the country|outside the (?:us|u\.s\.|country)|europe|asia|africa"
            r"|south america|mexico|canada|france|italy|spain|germany|japan|china|india|uk|england|brazil|australia"
        ),
        "outside the united states abroad",
    ),
    (
        r"fl(?:y|own|ew) (?:me |him |her |us )?(?:back )?home|airlift(?:ed)?|air ambulance|medevac|medical flight|repatriat\w*",
        "medical evacuation",
    ),
    (r"shots?|jabs?|vaccinations?|immuni[sz]ations?|inoculations?", "vaccines"),
    (r"physio|physiotherapy|pt|rehab(?:ilitation)? therapy", "physical therapy"),
    (r"ot|occupational", "occupational therapy"),
    (r"speech|speech therapy|speech-language", "speech therapy"),
    (r"chiro|chiropractors?|spinal adjustments?|back cracking", "chiropractic"),
    (r"c-?sections?|caesareans?|cesareans?|caesarians?|cesarians?", "cesarean"),
    (r"non-?emergency|not an emergency|not urgent|routine care|planned care", "routine planned non-emergency"),
    (r"natural birth|normal birth|vaginal birth|regular birth", "vaginal delivery"),
    (
        r"giving birth|give birth|deliver(?:ing|y)? (?:my |the |a )?baby|childbirth|labou?r and delivery|birth in hospital",
        "delivery hospital stay",
    ),
    (r"breast ?feeding|lactation|birth(?:ing)? classes|prenatal classes|antenatal classes", "childbirth breastfeeding classes"),
    (r"pregnan(?:t|cy) (?:check-?ups?|visits?|care)|prenatal|antenatal", "prenatal visits"),
    (r"wife|husband|spouse|partner|mom|mum|dad|mother|father|parent|relative|son|daughter", "family member someone"),
    (
        r"video (?:visit|call|appointment|doctor)s?|virtual (?:visit|care|doctor)|online doctor|telemedicine|tele-?health",
        "telehealth virtual care video visits",
    ),
    (r"hotline|helpline|phone line", "line"),
    # the documents' own alternatives: one of them found is enough
    (r"doctors?|physicians?|providers?|clinicians?", "doctor provider"),
    (r"medicines?|medications?|meds|drugs?|pills?|prescriptions?", "drug medicine medication"),
    (r"visits?|appointments?|sessions?|consultations?", "visit"),
    (r"teeth|tooth|dentists?|dental (?:work|cleanings?|checkups?)|cleanings?|fillings?|root canals?|crowns?", "dental care"),
    (r"suicid(?:e|al)|self-?harm|crisis|kill myself", "crisis suicide lifeline"),
    (r"insurance card|member card|id card|membership card", "id card"),
    (r"records?|chart|medical file", "medical records"),
    (r"health (?:info(?:rmation)?|data)|my data|personal data|my information", "health information"),
    (r"stock up|supply for (?:a |my )?trip|before (?:a |my )?(?:long )?(?:trip|vacation|holiday)", "vacation override supply"),
    (r"euros?|pounds|yen|pesos|foreign currency|currency", "currency exchange rate"),
    (r"try (?:a |the )?cheaper (?:drug|medicine|med)s? first|fail first", "step therapy"),
    (r"not on the (?:list|formulary)|isn't on the (?:list|formulary)|off-formulary|non-formulary", "formulary exception"),
    (r"ivf|in vitro", "in vitro fertilization ivf"),
    (r"surrogate|surrogacy|gestational carrier", "surrogacy"),
    (r"tubal (?:ligation|reversal)|vasectomy reversal|reverse (?:my |a )?(?:tubal|vasectomy|sterili[sz]ation)", "reversal sterilization"),
)
_LAY = tuple((re.compile(rf"(?<![\w-])(?:{pat})(?![\w-])", re.IGNORECASE), canon) for pat, canon in LAY_TERMS)


def lay_terms(question: str) -> list[str]:
    """The document words the lay phrases of ``question`` stand for ("walk-in clinic" ->
    "urgent care"), each once, in the order of :data:`LAY_TERMS`."""
    return [canon for rx, canon in _LAY if rx.search(question)]


#: what a question asks for (ADR 0126): an amount, a duration or date, a count, or a yes/no
#: statement; each with the pattern a unit that answers it holds. Found by the question's own
#: words (:func:`answer_types`), in the sentence that asks (:func:`asking_sentence`).
_ASKS_MONEY = re.compile(
    r"\b(how much|cost|costs|price|pay|copay|co-pay|coinsurance|premium|deductible|fee|fees|charge|allowance"
    r"|reimburse[ds]?|maximum|limit)\b",
    re.IGNORECASE,
)
_ASKS_DURATION = re.compile(
    r"\b(how long|how soon|how quickly|how fast|how late|how far back|how many (?:calendar )?(?:days|hours|weeks|months|years)"
    r"|by when|until when|what date|which date|what day|deadline|when (?:is|are|does|do|will|would|can|must|should|has|have))\b",
    re.IGNORECASE,
)
_ASKS_COUNT = re.compile(r"\b(how many|how often|number of|limit on|cap on)\b", re.IGNORECASE)
#: a yes/no question: its asking clause opens with an auxiliary ("Does Silver cover ...", "Is there ...",
#: "Can I ...") — also after a lead-in ("On Gold, is ...", "Quick question: do I ...")
_ASKS_YESNO = re.compile(
    r"(?:^|[,:;—-]\s*|\b(?:and|but|so|also)\s+)(is|are|does|do|did|can|could|will|would|should|must|may|am|has|have|isn't|aren't"
    r"|doesn't|don't|won't|can't)\s",
    re.IGNORECASE,
)
_MONEY = re.compile(
    r"\$\d|\d%|\bno cost\b|\bfree\b|\bcover(?:s|ed)?\b|\breimburse[sd]?\b|\bnothing\b|\bno charge\b|\bwaived\b", re.IGNORECASE
)
_UNITS = r"(?:calendar |business )?(?:days?|hours?|weeks?|months?|years?)"
_WORD_NUMBERS = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirty|sixty|ninety)"
_DURATION = re.compile(
    rf"\b(?:\d+|{_WORD_NUMBERS})[- ]{_UNITS}\b|\b\d+(?:st|nd|rd|th) (?:day|week)\b|\bfirst day\b"
    r"|\b(?:january|february|march|april|may|june|july|august|september|october|november|december) \d"
    r"|\b\d+ (?:minutes?|hours?)\b",
    re.IGNORECASE,
)
_COUNT = re.compile(rf"\d|\b{_WORD_NUMBERS}\b|\bno (?:annual )?(?:visit )?limits?\b|\bunlimited\b|\bonce\b", re.IGNORECASE)
#: a statement a yes/no question can be answered with: covered or not, needed or not, only, never
_POLAR = re.compile(
    r"\b(?:not|no|never|only|cover(?:s|ed)?|need(?:s|ed)?|require[sd]?|required|excluded|free|no cost|waived|must|cannot)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d")
ANSWER_TYPES: dict[str, re.Pattern[str]] = {"money": _MONEY, "duration": _DURATION, "count": _COUNT, "yesno": _POLAR}
_ASKING = re.compile(r"[^.!?]*\?")


def asking_sentence(question: str) -> str:
    """The sentence of ``question`` that asks: the last one ending in "?", else the last sentence
    (a long message tells a story first: "My son hurt his knee. ... How many visits do we get?")."""
    asks = [m.group(0).strip() for m in _ASKING.finditer(question) if len(m.group(0).strip()) > 3]
    if asks:
        return asks[-1]
    parts = [p for p in _SENT.split(question.strip()) if p.strip()]
    return parts[-1].strip() if parts else question


def answer_types(question: str) -> list[str]:
    """What the asking sentence of ``question`` wants (:data:`ANSWER_TYPES`): a duration ("how long",
    "when does"), a count ("how many"), an amount ("how much", "copay") or a yes/no statement (an
    auxiliary opens the clause); several when it says several ("Is there a copay for ...")."""
    q = asking_sentence(question)
    out: list[str] = []
    if _ASKS_DURATION.search(q):
        out.append("duration")
    elif _ASKS_COUNT.search(q):
        out.append("count")
    if not out and _ASKS_MONEY.search(q):
        out.append("money")
    if _ASKS_YESNO.search(q) and not re.match(r"\s*(?:how|what|which|when|where|who|why)\b", q, re.IGNORECASE):
        out.append("yesno")
    return out


def holds_answer_type(text: str, types: Sequence[str]) -> bool:
    """``text`` holds what one of ``types`` asks for."""
    return any(ANSWER_TYPES[t].search(text) for t in types)


_MAX_UNIT_CHARS = 600
#: a sentence that leans on the one before ("They are not covered on Bronze.") is quoted with it
_ANAPHORA = re.compile(r"(?:They|It|This|These|That|Those|Its|Their)\b")


def _stem(w: str) -> str:
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ed", "es", "s", "ly"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            w = w[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    return w[:7]


_FRAMING_STEMS = frozenset(_stem(w) for w in FRAMING)


def terms(text: str) -> set[str]:
    """Content terms of ``text``: lower-cased words without stop words, synonyms expanded,
    stemmed; numbers kept as they are (without ``$``, ``,`` and a trailing ``.``)."""
    out: set[str] = set()
    for tok in _words(text):
        if tok[0].isdigit() or tok[0] == "$":
            out.add(tok.strip("$.,").replace(",", ""))
            continue
        if tok in _STOP or len(tok) < 2:
            continue
        for w in SYNONYMS.get(tok, (tok,)):
            for part in w.split("-") if "-" in w and w not in SYNONYMS else (w,):
                if part not in _STOP and len(part) > 1:
                    out.add(_stem(part))
        if "-" in tok:
            for part in tok.split("-"):
                if part not in _STOP and len(part) > 1:
                    out.add(_stem(part))
    return out


def matches(term: str, pool: set[str]) -> bool:
    """``term`` is in ``pool``, or one of them starts with the other and they share at least
    five letters (married / marriage, chiropractor / chiropractic)."""
    if term in pool:
        return True
    if len(term) < 5 or term[0].isdigit():
        return False
    return any(len(p) >= 5 and (p.startswith(term[:5]) and (p.startswith(term) or term.startswith(p))) for p in pool)


def expand(question: str) -> str:
    """``question`` with the canonical words of its synonyms appended (for keyword search:
    "physio" also searches "physical therapy")."""
    extra: list[str] = []
    for tok in _WORD.findall(question.lower()):
        for w in SYNONYMS.get(tok, ()):
            if w not in extra and w not in question.lower():
                extra.append(w)
    asked = terms(question)
    for canon in lay_terms(question):
        for w in canon.split():
            if w not in extra and not terms(w) <= asked:  # "visit" is not added to "visits"
                extra.append(w)
    return f"{question} ({' '.join(extra)})" if extra else question


def key_terms(question: str, plans: Sequence[str]) -> set[str]:
    """The terms of ``question`` that say what is asked: no plan names, no generic words; the
    document words of its lay phrases added (:func:`lay_terms`)."""
    drop = {_stem(w) for w in _GENERIC} | {_stem(p.lower()) for p in plans} | particles(question)
    return {t for t in terms(" ".join([question, *lay_terms(question)])) if t not in drop}


_OBJECTS = frozenset("me us him her them you it".split())
_PARTICLES = frozenset("back in out up off over down through".split())


def particles(question: str) -> set[str]:
    """Terms of ``question`` that are only the particle of a phrasal verb, after its object pronoun
    ("set me *back*", "pay us *back*", "fill me *in*"): part of how the member asks, never what
    (ADR 0126); a word also used elsewhere in the question keeps its term."""
    toks = _TOKEN.findall(question.lower().replace("\u2019", "'"))
    as_particle: dict[str, bool] = {}
    for i, t in enumerate(toks):
        if t in _PARTICLES:
            after_object = i >= 2 and toks[i - 1] in _OBJECTS and toks[i - 2][0].isalpha() and toks[i - 2] not in _AUXILIARIES
            as_particle[t] = as_particle.get(t, True) and after_object
    return {_stem(t) for t, only in as_particle.items() if only}


def _words(text: str) -> list[str]:
    """Lower-case words of ``text``, contractions cut off ("we're" -> "we")."""
    return _WORD.findall(_CONTRACTION.sub("", text.lower().replace("\u2019", "'")))


def framing_terms(question: str) -> set[str]:
    """The terms of ``question`` that only frame it (:data:`FRAMING`), and the words of its lay
    phrases (they stand for document words, which are asked for instead); a lay phrase that
    is itself a framing word ("my son") lends its document words ("family member") only when
    a passage has them."""
    out = {_stem(w) for w in _words(question) if w in FRAMING}
    for rx, canon in _LAY:
        for m in rx.finditer(question):
            own = terms(m.group(0))
            out |= own - terms(canon)
            if all(w in FRAMING for w in _words(m.group(0))):
                out |= terms(canon)
    return out


#: the words around a verb in a question: after a subject pronoun or an auxiliary ("do I *owe*",
#: "am I *stuck*", "is *closed*"), before an object pronoun, a particle or an article ("*set* me back",
#: "*kick* in", "*handles* my")
_SUBJECTS = frozenset("i you we they he she it who i've i'm i'd we've we're you've they've".split())
_AUXILIARIES = frozenset(
    "do does did will would can could should may might must shall is are was were be been being am get got getting".split()
)
_AFTER_VERB = frozenset("me us him them in out up back off over down a an the my your his her our their".split())
_TOKEN = re.compile(r"[\w'-]+|[^\w\s]")


def asking_words(question: str) -> set[str]:
    """Words of ``question`` that stand where a verb stands (:data:`_SUBJECTS`, :data:`_AUXILIARIES`
    before, :data:`_AFTER_VERB` after), at every place they occur: how the member asks ("what do I
    owe", "when does it kick in", "how much will it set me back"), not what they ask about (a noun
    phrase: "a private hospital room", "an ambulance ride")."""
    toks = _TOKEN.findall(question.lower().replace("\u2019", "'"))
    seen: dict[str, bool] = {}
    for i, t in enumerate(toks):
        if not t[0].isalpha():
            continue
        prev = toks[i - 1] if i else ""
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        verb = prev in _SUBJECTS or prev in _AUXILIARIES or nxt in _AFTER_VERB
        seen[t] = seen.get(t, True) and verb
    return {t for t, verb in seen.items() if verb}


_RANKS: dict[str, int] | None = None
_RANKS_LOCK = threading.Lock()


def word_ranks() -> dict[str, int]:
    """Whole English words of the embedded MiniLM's WordPiece vocabulary -> their rank in it (1 =
    "the"). WordPiece adds words to its vocabulary roughly in order of frequency, so the rank is
    an offline frequency list: "owe" ~10,500, "hospice" ~27,300; a word it splits into pieces
    ("acupuncture", "surrogacy") is rarer still and not listed. Empty when the model package is
    not installed (every word then counts as rare)."""
    global _RANKS
    if _RANKS is None:
        with _RANKS_LOCK:
            if _RANKS is None:
                try:
                    import json

                    from plinth.embeddings.minilm import model_dir

                    vocab = json.loads((model_dir() / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
                    first = int(vocab.get("the", 0))
                    _RANKS = {w: int(i) - first + 1 for w, i in vocab.items() if int(i) >= first and w.isalpha()}
                except Exception:  # a missing or unreadable model package: no frequency list
                    _RANKS = {}
    return _RANKS


def _canon_of(phrase: str) -> str:
    return " ".join(lay_terms(phrase))


def surface_words(text: str) -> dict[str, str]:
    """Each content term of ``text`` -> a word of ``text`` it comes from (for embedding)."""
    out: dict[str, str] = {}
    for tok in _WORD.findall(text.lower()):
        if tok[0].isdigit() or tok[0] == "$" or tok in _STOP:
            continue
        for t in terms(tok):
            out.setdefault(t, tok)
    return out


@dataclass(frozen=True)
class Unit:
    """A quotable piece of a served passage."""

    text: str  # as quoted in the answer
    index: int  # the passage's citation number
    document: str
    heading: str
    kind: str  # sentence | row
    plan: str | None = None  # the plan it is about, when it is about one
    unlabelled: bool = False  # a table row with several values whose column headers were not served


def _core(u: Unit) -> str:
    """A unit's own words, without the section name a row or list item is prefixed with."""
    section = u.heading.split(" > ")[-1] if u.heading else ""
    if u.kind == "row" and " — " in u.text:
        return u.text.split(" — ", 1)[1]
    if u.kind == "item" and section and u.text.startswith(section + ": "):
        return u.text[len(section) + 2 :]
    return u.text


@dataclass
class GroundedAnswer:
    text: str
    refused: bool
    reason: str  # answered | low-coverage | low-score | low-confidence | no-passages
    units: list[Unit] = field(default_factory=list)
    score: float = 0.0
    coverage: float = 0.0
    missing: list[str] = field(default_factory=list)
    #: each key term of the question: (term, the question's word for it, IDF weight, credit 0..1)
    detail: list[tuple[str, str, float, float]] = field(default_factory=list)
    #: :func:`confidence` of the coverage and the best unit's score (0.0 when refused before scoring)
    confidence: float = 0.0

    def as_event(self) -> dict[str, Any]:
        return {
            "refused": self.refused,
            "reason": self.reason,
            "score": round(self.score, 4),
            "coverage": round(self.coverage, 4),
            "confidence": round(self.confidence, 4),
            "missing_terms": self.missing,
            "quoted": [u.index for u in self.units],
        }


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def split_units(passage: dict[str, Any], index: int, plans: Sequence[str]) -> list[Unit]:
    """Sentences, list items and table rows of one served passage (``{"text", "document",
    "heading", "metadata"?}``)."""
    text = str(passage.get("text") or "")
    document = str(passage.get("document") or "")
    heading = str(passage.get("heading") or "")
    section = heading.split(" > ")[-1] if heading else ""
    doc_plan = passage.get("plan")
    units: list[Unit] = []
    lowered = [p.lower() for p in plans]

    def plan_of(s: str) -> str | None:
        named = plans_named(s, lowered)
        if len(named) == 1:
            return named[0]
        return str(doc_plan).lower() if doc_plan else None

    header: list[str] | None = None
    prose: list[str] = []

    def flush_prose() -> None:
        block = _flat(" ".join(prose))
        prose.clear()
        last: str | None = None
        for s in _SENT.split(block):
            s = s.strip()
            if len(s) <= 3:
                continue
            if last is not None and _ANAPHORA.match(s):  # "They are not covered on Bronze." says little alone
                units.pop()
                s = f"{last} {s}"
            units.append(Unit(s[:_MAX_UNIT_CHARS], index, document, heading, "sentence", plan_of(s)))
            last = s

    lines = text.splitlines()
    for at, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith("|"):
            flush_prose()
            cells = _cells(line)
            if _is_rule(cells):
                continue
            if header is None:
                following = lines[at + 1].strip() if at + 1 < len(lines) else ""
                if following.startswith("|") and _is_rule(_cells(following)):
                    header = cells
                    continue
                # a table cut by the chunker goes on without its header: its columns are unknown
                header = []
            units.append(_row_unit(header, cells, section, index, document, heading, doc_plan, lowered))
            continue
        header = None
        if not line or line.startswith("#"):
            flush_prose()
            continue
        if re.match(r"^([-*•]|\d+[.)])\s+", line):
            flush_prose()
            item = _flat(re.sub(r"^([-*•]|\d+[.)])\s+", "", line))
            # a list item alone ("MRI, CT and PET scans") means little: say which list it is in
            text_ = f"{section}: {item}" if section else item
            units.append(Unit(text_[:_MAX_UNIT_CHARS], index, document, heading, "item", plan_of(item)))
            continue
        if units and units[-1].kind == "item" and not prose and raw.startswith((" ", "\t")):
            last = units.pop()  # the item goes on on an indented line
            text_ = _flat(f"{last.text} {line}")
            units.append(Unit(text_[:_MAX_UNIT_CHARS], index, document, heading, "item", plan_of(text_)))
            continue
        prose.append(line)
    flush_prose()
    # a list item continued on the next line was split in two: that is fine for quoting
    return units


def _is_rule(cells: list[str]) -> bool:
    return all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c)


def _row_unit(
    header: list[str], cells: list[str], section: str, index: int, document: str, heading: str, doc_plan: Any, plans: list[str]
) -> Unit:
    name = cells[0] if cells else ""
    row_plan = name.lower() if name.lower() in plans else None
    if not header and len(cells) > 2:  # columns unknown: the values as they stand, marked unlabelled
        lead = f"{section} — " if section else ""
        plan = row_plan or (str(doc_plan).lower() if doc_plan else None)
        text = f"{lead}{name}: " + "; ".join(cells[1:])
        return Unit(text[:_MAX_UNIT_CHARS], index, document, heading, "row", plan, unlabelled=True)
    values = list(zip(header[1:] or [""] * (len(cells) - 1), cells[1:], strict=False))
    if len(values) == 1:
        _, val = values[0]
        lead = f"{section} — " if section and section.lower() not in name.lower() else ""
        text = f"{lead}{name}: {val}"
    else:
        text = (
            f"{section} — {name}: " + "; ".join(f"{h or '?'}: {v}" for h, v in values)
            if section
            else f"{name}: " + "; ".join(f"{h}: {v}" for h, v in values)
        )
    plan = row_plan or (str(doc_plan).lower() if doc_plan else None)
    return Unit(text[:_MAX_UNIT_CHARS], index, document, heading, "row", plan)


def restrict_row(unit: Unit, plan: str, plans: Sequence[str]) -> Unit:
    """A row of a table with one column per plan, cut to the column of ``plan``."""
    if unit.kind != "row" or unit.plan is not None:
        return unit
    head, sep, rest = unit.text.partition(": ")
    keep = [p for p in rest.split("; ") if p.lower().startswith(plan.lower() + ":")]
    if not sep or not keep or len(plans_named(rest, plans)) < 2:
        return unit
    return Unit(f"{head}: {'; '.join(keep)}", unit.index, unit.document, unit.heading, unit.kind, plan.lower())


class _VectorCache:
    """Unit embeddings by text (the same passages are served again and again)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._d: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, embedder: Any, texts: list[str]) -> np.ndarray:
        key = getattr(embedder, "model_id", "")
        out: list[Any] = [None] * len(texts)
        todo: list[int] = []
        with self._lock:
            for i, t in enumerate(texts):
                v = self._d.get((key, t))
                if v is None:
                    todo.append(i)
                else:
                    self._d.move_to_end((key, t))
                    out[i] = v
        if todo:
            vecs = embedder.embed([texts[i] for i in todo])
            with self._lock:
                for i, v in zip(todo, vecs, strict=True):
                    out[i] = np.asarray(v, dtype=np.float32)
                    self._d[(key, texts[i])] = out[i]
                while len(self._d) > self.size:
                    self._d.popitem(last=False)
        return np.stack(out) if out else np.zeros((0, 0), dtype=np.float32)


_CACHE = _VectorCache()


@dataclass
class GroundingConfig:
    """The calibrated knobs (``bench/grounding.py`` calibrates them on the development
    questions; see ADR 0115)."""

    min_coverage: float = 0.25  # share (IDF-weighted, by role: ADR 0123) of the question's key terms the passages must contain
    #: a key term absent from the passages counts in part when a passage word is close to it in
    #: MiniLM (cosine ``soft_from`` counts nothing, ``soft_from + soft_span`` and above counts fully)
    soft_from: float = 0.55
    soft_span: float = 0.25
    min_score: float = 0.25  # the best unit's score below which the answer is "I don't know" whatever the coverage
    lexical_weight: float = 0.4  # score = w * word overlap + (1 - w) * cosine similarity
    second_within: float = 0.9  # a second unit is quoted when it scores at least this share of the best
    max_units: int = 2
    figure_bonus: float = 0.08  # added when the unit holds the kind of figure the question asks for
    other_plan_factor: float = 0.3  # a unit about another plan than the one asked about
    section_share: float = 0.5  # what a key term found only in a unit's section name counts for
    no_figure_factor: float = 0.8  # a unit without the kind of figure the question asks for
    #: a key term no passage has, whose question word is a common English word (rank below
    #: ``common_rank`` in :func:`word_ranks`) standing where a verb stands (:func:`asking_words`:
    #: "owe", "kick in", "set me back"), weighs this share of its IDF weight (ADR 0123)
    verb_weight: float = 0.2
    common_rank: int = 20000
    #: a missing key term whose question word stands next to a found key term's word ("ambulance
    #: *ride*", "contact lens *solution*") weighs this multiple of its IDF weight (ADR 0123)
    narrow_weight: float = 2.0
    #: a missing key term whose question word is an everyday English word (rank below ``plain_rank``
    #: in :func:`word_ranks`: "damage", "chance", "extra", "run", "show up"), wherever it stands, and
    #: that narrows no found term, weighs this share of its IDF weight (ADR 0130): the member's way of
    #: speaking, not a service the documents leave out (those are rarer words: "acupuncture",
    #: "hospice", "massage", "wheelchair"). 0 rank: off
    plain_rank: int = 0
    plain_weight: float = 0.2
    #: a unit about the plan the question names (ADR 0126), in its own words or by its document's
    #: front matter, scores this much more (a multiplier ``1 + plan_bonus``)
    plan_bonus: float = 0.2
    #: a key term only in the story around the asking sentence of a long message ("My son hurt his
    #: knee playing soccer. ... How many visits?") weighs this share in a unit's score (ADR 0126)
    context_share: float = 0.15
    #: the answer/refuse decision (ADR 0129): logistic weights (bias, coverage, score, coverage x
    #: score) fitted by ``bench/grounding.py`` on the development sets pooled, to tell a question
    #: answered right with its citation from one that should be refused; the answer is "I don't
    #: know" below ``min_confidence`` (calibrated with the weights: >= 90% of unanswerable
    #: questions refused). ``min_coverage`` and ``min_score`` stay as floors (the coverage one
    #: spares the MiniLM pass over the units when the documents do not talk about the question)
    answer_model: tuple[float, float, float, float] = (-6.98, 4.208, 5.138, 3.12)
    min_confidence: float = 0.42


def confidence(coverage: float, score: float, model: Sequence[float]) -> float:
    """The probability that an answer with this ``coverage`` and best-unit ``score`` is right,
    by the logistic ``model`` (bias, coverage, score, coverage x score weights)."""
    b, wc, ws, wcs = model
    z = b + wc * coverage + ws * score + wcs * coverage * score
    return 1.0 / (1.0 + math.exp(-z))


def _soft_credit(
    question: str, missing: list[str], passages: Sequence[dict[str, Any]], embedder: Any, cfg: GroundingConfig
) -> dict[str, float]:
    """Partial credit for key terms no passage contains, by the closest passage word in MiniLM
    (pills ~ medication, married ~ marriage); unrelated words (acupuncture) stay near 0."""
    words = surface_words(question)
    asked = [words.get(t, t) for t in missing]
    pool = sorted({w for p in passages for w in re.findall(r"[a-z][a-z-]{3,}", str(p.get("text") or "").lower()) if w not in _STOP})
    if not pool:
        return {}
    vecs = _CACHE.embed(embedder, asked + pool)
    sims = vecs[: len(asked)] @ vecs[len(asked) :].T
    out = {}
    for t, row in zip(missing, sims, strict=True):
        out[t] = float(min(1.0, max(0.0, (float(row.max()) - cfg.soft_from) / cfg.soft_span)))
    return out


def _edits(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein distance of ``a`` and ``b`` (optimal string alignment), or
    ``limit + 1`` as soon as it is known to exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def _respell(question: str, missing: list[str], passages: Sequence[dict[str, Any]]) -> dict[str, set[str]]:
    """Missing key terms whose question word is a misspelling of a passage word ("dedcutible",
    "speclist"): term -> the terms of that passage word. One edit allowed from 5 letters, two
    from 8; the first letter must agree; a word with two equally close candidates stays missing."""
    words = surface_words(question)
    vocab = {
        w for p in passages for w in re.findall(r"[a-z][a-z-]{3,}", (str(p.get("text") or "") + " " + str(p.get("heading") or "")).lower())
    }
    out: dict[str, set[str]] = {}
    for t in missing:
        word = words.get(t, t)
        if len(word) < 5 or not word.isalpha():
            continue
        limit = 2 if len(word) >= 8 else 1
        best: dict[int, set[str]] = {}
        for v in vocab:
            if v[0] != word[0] or v == word:
                continue
            d = _edits(word, v, limit)
            if d <= limit:
                best.setdefault(d, set()).add(v)
        if best:
            cands = best[min(best)]
            stems = {frozenset(terms(c)) for c in cands}
            if len(stems) == 1:
                out[t] = set(next(iter(stems)))
    return out


def _roles(
    question: str, missing: Sequence[str], credit: dict[str, float], surface: dict[str, str], cfg: GroundingConfig
) -> dict[str, float]:
    """The weight factor of each missing key term by its role in ``question``: ``verb_weight``
    for a common word where a verb stands (:func:`asking_words`, :func:`word_ranks`),
    ``narrow_weight`` for a word (with little MiniLM credit) right next to a word of a key term
    the passages have — it narrows what they talk about to something they do not say."""
    if not missing:
        return {}
    ranks, verbs = word_ranks(), asking_words(question)
    toks = _TOKEN.findall(question.lower().replace("\u2019", "'"))
    found = {t for t, c in credit.items() if c >= 1.0}
    out: dict[str, float] = {}
    for t in missing:
        word = surface.get(t, "")
        if not word.isalpha():
            continue
        if word in verbs and ranks.get(word, cfg.common_rank) < cfg.common_rank:
            out[t] = cfg.verb_weight
            continue
        # a participle ("a *completed* authorization") describes the state of what is asked, not
        # another thing; only a noun or adjective narrows (ADR 0126)
        if credit.get(t, 0.0) < 0.5 and not word.endswith("ed"):
            at = [i for i, tok in enumerate(toks) if tok == word]
            near = [toks[j] for i in at for j in (i - 1, i + 1) if 0 <= j < len(toks) and toks[j][0].isalpha()]
            if cfg.plain_rank:  # a word narrows the thing next to it, not a verb ("billed *extra*", ADR 0130)
                near = [x for x in near if x not in verbs]
            if any(terms(x) & found for x in near):
                out[t] = cfg.narrow_weight
                continue
        if ranks.get(word, cfg.plain_rank) < cfg.plain_rank:
            out[t] = cfg.plain_weight
    return out


def refusal(phone: str | None) -> str:
    where = f"Member Services at {phone}" if phone else "Member Services"
    return f"I don't know — the policy documents I can search do not answer this. Please contact {where}."


def find_phone(texts: Sequence[str], near: str = "member services") -> str | None:
    """The phone number written closest after ``near`` in ``texts`` (the knowledge base's own
    contact number), else None."""
    for text in texts:
        for m in re.finditer(re.escape(near), text, re.IGNORECASE):
            phone = _PHONE.search(text, m.end(), m.end() + 120)
            if phone:
                return phone.group(0)
    return None


def answer(
    question: str,
    passages: Sequence[dict[str, Any]],
    embedder: Any,
    *,
    plans: Sequence[str] = (),
    plan_query: PlanQuery | None = None,
    phone: str | None = None,
    config: GroundingConfig | None = None,
) -> GroundedAnswer:
    """The grounded answer to ``question`` from the served ``passages`` (each with ``index``,
    ``text``, ``document``, ``heading`` and optionally ``plan``)."""
    cfg = config or GroundingConfig()
    pq = plan_query or PlanQuery()
    if not passages:
        return GroundedAnswer(refusal(phone), True, "no-passages")
    units: list[Unit] = []
    for n, p in enumerate(passages, start=1):
        units.extend(split_units(p, int(p.get("index", n)), plans))
    if pq.single:
        units = [restrict_row(u, pq.single, plans) for u in units]
    if not units:
        return GroundedAnswer(refusal(phone), True, "no-passages")
    unit_terms = [terms(u.text + " " + u.heading.split(" > ")[-1]) for u in units]
    # IDF over the served units: a term in every unit (copay) tells little
    n = len(units)
    df: dict[str, int] = {}
    for ts in unit_terms:
        for t in ts:
            df[t] = df.get(t, 0) + 1
    keys = key_terms(question, plans)

    def w(t: str) -> float:
        return math.log(1.0 + (n + 1) / (1 + df.get(t, 0)))

    everywhere = set().union(*unit_terms) | terms(" ".join(str(p.get("heading") or "") for p in passages))
    missing = sorted(t for t in keys if not matches(t, everywhere))
    if missing:  # a misspelt word counts as the passage word it is one or two letters away from
        fixed = _respell(question, missing, passages)
        if fixed:
            keys = (keys - set(fixed)) | {t for ts in fixed.values() for t in ts}
            missing = sorted(t for t in keys if not matches(t, everywhere))
    # a framing word (who, when, the verbs of asking) no passage has is not held against the
    # question; nor is a document word of a lay phrase when another word of that phrase is found
    # ("mental health therapy psychiatry" for "counsellor": the passage says "therapy")
    framing = framing_terms(question)
    for canon in lay_terms(question):
        ct = terms(canon)
        if any(matches(t, everywhere) for t in ct):
            framing |= ct
    # nor are they when the lay phrase's own words are found ("my new address": the passages say
    # "change of address", not "moving to a new area")
    for rx, canon in _LAY:
        for m in rx.finditer(question):
            said = {t for t in terms(m.group(0)) if t not in _FRAMING_STEMS}
            if said and all(matches(t, everywhere) for t in said):
                framing |= terms(canon)
    keys = {t for t in keys if t not in framing or t not in missing}
    missing = [t for t in missing if t in keys]
    credit = {t: 1.0 for t in keys if t not in missing}
    if missing and cfg.soft_span > 0:
        credit |= _soft_credit(question, missing, passages, embedder, cfg)
    # a common word in a verb's place that no passage has says how the member asks, not what:
    # it weighs little; a missing noun ("private" room, "massage") keeps its full weight
    # the coverage weighs a missing term by its role in the question (ADR 0123): a common word where
    # a verb stands says how the member asks ("owe", "kick in") and weighs little; a word next to a
    # found key term narrows what is asked ("ambulance *ride*", "a *private* hospital room") and
    # weighs more. A unit's lexical score below is its share of the same weighted total.
    surface = surface_words(question)
    role = _roles(question, missing, credit, surface, cfg)
    # in a long message the asking sentence says what is asked; the sentences before it tell the
    # story ("My son hurt his knee playing soccer. ... How many visits?"): their terms weigh less
    asking = asking_sentence(question)
    asked_terms = key_terms(asking, plans) | terms(" ".join(lay_terms(asking))) if asking != question else set(keys)
    if not any(matches(t, asked_terms) for t in keys):  # "How much of that will Acme pay?": the story says what
        asked_terms = set(keys)
    share = {t: 1.0 if matches(t, asked_terms) else cfg.context_share for t in keys}
    total = sum(w(t) * role.get(t, 1.0) * share[t] for t in keys)
    found = sum(w(t) * role.get(t, 1.0) * share[t] * credit.get(t, 0.0) for t in keys)
    coverage = found / total if total else 1.0
    detail = [(t, surface.get(t, t), w(t) * role.get(t, 1.0) * share[t], credit.get(t, 0.0)) for t in sorted(keys)]
    if coverage < cfg.min_coverage:
        return GroundedAnswer(refusal(phone), True, "low-coverage", coverage=coverage, missing=missing, detail=detail)
    qv = np.asarray(embedder.embed([question])[0], dtype=np.float32)
    uv = _CACHE.embed(embedder, [f"{u.heading.split(' > ')[-1]}: {u.text}" for u in units])
    sims = uv @ qv
    wants = answer_types(question)
    total_scored = sum(w(t) * share[t] for t in keys)
    scores: list[float] = []
    for i, u in enumerate(units):
        # a term in the unit's own words counts fully, one only in its section's name (every row of
        # a copay table is "urgent care" by its heading) counts half: the row whose label names
        # the asked service wins over its neighbours
        own_terms = terms(_core(u))
        lexical = (
            sum(w(t) * share[t] * (1.0 if matches(t, own_terms) else cfg.section_share) for t in keys if matches(t, unit_terms[i]))
            / total_scored
            if total_scored
            else 0.0
        )
        s = cfg.lexical_weight * lexical + (1 - cfg.lexical_weight) * float(sims[i])
        if wants:
            s = s + cfg.figure_bonus if holds_answer_type(u.text, wants) else s * cfg.no_figure_factor
        if pq.single and u.plan is not None and u.plan != pq.single.lower():
            s *= cfg.other_plan_factor
        if pq.single and u.unlabelled:  # which value is the asked plan's is unknown
            s *= cfg.other_plan_factor
        if pq.single and u.plan == pq.single.lower():
            s *= 1.0 + cfg.plan_bonus
        scores.append(s)
    order = sorted(range(n), key=lambda i: -scores[i])
    best = scores[order[0]]
    sure = confidence(coverage, best, cfg.answer_model)
    if best < cfg.min_score:
        return GroundedAnswer(
            refusal(phone), True, "low-score", score=best, coverage=coverage, missing=missing, detail=detail, confidence=sure
        )
    if sure < cfg.min_confidence:
        return GroundedAnswer(
            refusal(phone), True, "low-confidence", score=best, coverage=coverage, missing=missing, detail=detail, confidence=sure
        )
    chosen = [units[order[0]]]

    def own(i: int) -> float:  # the share of the key terms in the unit's own words (not its section's)
        ts = terms(_core(units[i]))
        return sum(w(t) for t in keys if matches(t, ts)) / total if total else 0.0

    for i in order[1 : cfg.max_units]:
        # a second unit must score close AND name what was asked in its own words (not the next row of the table)
        close = scores[i] >= cfg.second_within * best and own(i) > 0 and own(i) >= 0.5 * own(order[0])
        if close and units[i].text != chosen[0].text:
            chosen.append(units[i])
    return GroundedAnswer(phrase(chosen), False, "answered", chosen, best, coverage, missing, detail, sure)


def phrase(units: Sequence[Unit]) -> str:
    """The quoted units with their citations, one line each (no preamble: every sentence of
    the answer is a quote, so the groundedness check finds each in its passage)."""
    lines = []
    for u in units:
        where = u.heading.split(" > ")[-1] if u.heading else u.document
        lines.append(f"“{u.text}” [{u.index}] ({u.document}, {where})")
    return "\n".join(lines)
