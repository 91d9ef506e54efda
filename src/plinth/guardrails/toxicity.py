"""Toxicity: insults, harassment, threats and wishes of harm, hateful generalisations about
groups, and profanity-laden abuse aimed at someone; offline, no model download.

A linear classifier (:mod:`plinth.guardrails.classifier`) over n-grams and the rule
features below, trained on plinth's own examples (``examples/guardrails/training/``,
written for the project). The rules look for *who* the words are aimed at: an insult or a
curse next to ``you``/``your staff``/a group is abuse, the same word in "this shitty back
pain" is not; frank medical language ("kill the infection", "suicide prevention", anatomy,
drug names) has features of its own that the training data teaches to be benign.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

from pydantic import Field

from plinth.domain.guardrails import Finding
from plinth.errors import PlinthError
from plinth.guardrails.base import DetectContext, Detector, DetectorOptions, register_detector
from plinth.guardrails.classifier import EmbeddingHead, LinearModel, PrototypeSet
from plinth.guardrails.deobfuscate import decoded_variants
from plinth.guardrails.text import Gated, fold, word_set, words

_INSULT = (
    r"idiots?|idiotic|morons?|moronic|stupid|stupidest|dumb|dumbest|dumbass|imbeciles?|cretins?|fools?|foolish|clowns?|"
    r"losers?|pathetic|worthless|useless|incompetent|brainless|clueless|dimwits?|halfwits?|nitwits?|dunces?|buffoons?|"
    r"jerks?|scum|scumbags?|lowlifes?|trash|garbage|pigs?|rats?|snakes?|parasites?|vermin|leech(?:es)?|crooks?|thie(?:f|ves)|"
    r"liars?|frauds?|scammers?|con artists?|bloodsuckers?|vultures?|maggots?|cockroach(?:es)?|roaches|"
    r"subhumans?|degenerates?|freaks?|psychos?|"
    r"lunatics?|nutjobs?|hypocrites?|bigots?|cowards?|assholes?|a-holes?|arseholes?|bastards?|bitch(?:es)?|dicks?|"
    r"dickheads?|pricks?|twats?|wankers?|douche(?:bags?)?|jackass(?:es)?|shitheads?|dipshits?|numbskulls?|boneheads?|"
    r"airheads?|retards?|retarded|brain-?damaged|sh[i1]tbags?|pos|piece of (?:sh[i1]t|crap|garbage|trash)|"
    r"waste of (?:space|oxygen|air|skin)|"
    r"good[- ]for[- ]nothing|braindead|brain[- ]dead|incompetents|ignorant|disgusting|revolting|vile|filthy|sleazy|"
    r"freeloaders?|moochers?|spongers?|scroungers?|greedy|evil|heartless|soulless|monsters?|animals|"
    r"savages?|sociopaths?|clowns|bozos?|muppets?|tossers?|"
    r"idiota|idiotas|imb[eé]cil(?:es)?|est[uú]pid[oa]s?|in[uú]til(?:es)?|pendej[oa]s?|cabr[oó]n(?:es)?|gilipollas|tont[oa]s?|"
    r"basura|ladr[oó]n(?:es)?|mentiros[oa]s?|ratas|sinverg[uü]enzas?|"
    r"vollidiot(?:en)?|idioten|d[uü]mmste[rn]?|dumm(?:kopf|e[rn]?)?|scammers?|arschl[oö]ch(?:er)?|"
    r"dummk[oö]pfe?|bl[oö]de?r?|unf[aä]hige?n?|wichser|hurensohn|versager|penner|"
    r"connards?|connasses?|cr[eé]tins?|d[eé]biles?|abrutis?|imb[eé]ciles?|salauds?|nuls?|"
    r"stronz[oi]|cretin[oi]|burr[oa]s?|ot[aá]ri[oa]s?|"
    r"incapables?|voleurs?|escrocs?|minables?|ordures?|bouffons?|enfoirés?|"
    r"idioti|incompetenti|inutili|imbecilli|deficienti|ladri|truffatori|coglion[ei]|"
    r"idioot|idioten|sukkels?|klootzakken|klootzak|oplichters?|waardeloze?|nutteloze?|debielen?|eikels?|"
    r"idiotas?|in[uú]teis|ladr[oõ]es|ladr[aã]o|lixo|imbecis|burros?|desgraçad[oa]s?|vigaristas?|"
    r"骗子|废物|蠢猪|混账|"
    r"傻逼|傻b|白痴|笨蛋|废物|垃圾|混蛋|蠢货|蠢|脑残|人渣|王八蛋|骗子|"
    r"идиоты?|дураки?|тупые?|тупой|урод(?:ы)?|сука|мразь"
)
_PROFANITY = (
    r"f+u+c+k+\w*|f\*+k\w*|f\*+\w*|fck\w*|fuk\w*|motherf\w+|sh[i1]t+\w*|bullsh[i1]t|crap(?:py)?|damn(?:ed|it)?|goddamn\w*|"
    r"piss(?:ed)?|bloody|bollocks|wtf|stfu|gtfo|mierda|joder|carajo|puta|puto|coño|verdammt|schei(?:ß|ss)e?\w*|merde|putain|"
    r"vaffanculo|cazzo|porra|caralho|merda|foda-se|kut|godverdomme|tering|kanker|"
    r"他妈的|他媽的|妈的|操你|卧槽|блять|бля|хуй"
)
_TARGET = (
    r"you|u|ya|ur|your|youre|you're|yours|yourself|yourselves|y'all|yall|you guys|you people|you lot|"
    r"your (?:staff|agents?|reps?|people|company|team|employees|bosses|ceo|managers?|doctors?|nurses?|app|bot|ai|service)|"
    r"this (?:company|bot|ai|assistant|chatbot|place|agent|rep)|acme|the (?:agent|rep|representative|assistant|bot|staff|ceo|"
    r"company|insurer|adjuster)|whoever|everyone (?:there|at)|all of you|"
    r"eres|sois|tú|tu|usted|ustedes|du|ihr|sie|dich|dir|euch|tu es|vous|t'es|"
    r"sei|siete|voi|je|jij|jullie|u|você|vocês|voce|voces|tu és|你|你们|您|ты|вы"
)
_GROUP = (
    r"immigrants?|foreigners?|migrants?|refugees?|women|woman|men|girls|muslims?|jews?|jewish people|christians?|catholics?|"
    r"atheists?|hindus?|buddhists?|gays?|lesbians?|homosexuals?|trans(?:gender)? people|trans people|queers?|blacks?|"
    r"black people|whites?|white people|asians?|chinese|mexicans?|latinos?|hispanics?|arabs?|indians?|africans?|"
    r"old people|elderly|boomers?|millennials?|poor people|the poor|fat people|obese people|disabled people|the disabled|"
    r"cripples?|religious (?:people|nuts|freaks|fanatics|zealots)|liberals?|conservatives?|democrats?|republicans?|"
    r"leftists?|right-wingers?|feminists?|vegans?|addicts|junkies|homeless people|the homeless|welfare (?:queens|people)|"
    r"those people|these people|their kind|that kind|people like (?:them|that|you)|inmigrantes|extranjeros|mujeres|"
    r"ausländer|flüchtlinge|frauen|étrangers|immigrés|femmes|外国人|女人"
)
_NEGATIVE_TRAIT = (
    r"animals|vermin|parasites|subhuman|savages|filth|disease|a disease|a plague|a cancer|inferior|stupid|lazy|criminals|"
    r"thieves|rapists|terrorists|dirty|disgusting|worthless|useless|evil|liars|scum|trash|garbage|a burden|leeches|"
    r"hypocrites|nuts|freaks|degenerates|freeloaders|moochers|scroungers|a drain|draining|backward|"
    r"primitive|ruining|destroying|taking over|invading|breeding|"
    r"should (?:be|not|never|go|get)|shouldn'?t (?:be allowed|get|have|vote|work|exist|decide)|don'?t belong|do not belong|"
    r"need to (?:go|leave|be)|must (?:go|be removed)|deserve (?:nothing|to)|can'?t be trusted|cannot be trusted|are all the same|"
    r"can'?t (?:even )?speak (?:proper |real |decent )?english|don'?t care about anyone|steal(?:ing)? our|sponging off"
)
_THREAT = (
    r"(?:i(?:'ll| will|'m going to| am going to|m gonna|'m gonna| gonna)|we(?:'ll| will| are going to|'re gonna)|someone should|"
    r"somebody should|going to|gonna)\s+(?:\w+\s+){0,2}?(?:kill|murder|hurt|beat|punch|stab|shoot|strangle|choke|slap|smash|"
    r"break|burn|bomb|blow up|destroy|end|find|hunt|come (?:for|after|to)|track|visit|get|ruin|make (?:you|them) pay|"
    r"make (?:you|them) suffer|wreck|cut|rip|sue)\b"
    r"|\bwatch your back\b|\bi know where (?:you|u|your \w+|they) (?:live|work|sleep|are)\b|\byou(?:'re| are|r) (?:dead|done|finished) \b"
    r"|\byou(?:'ll| will) (?:regret|pay for|be sorry)\b|\bsleep with one eye open\b|\bwait(?:ing)? (?:for you )?outside\b"
    r"|\b(?:punch|hit|kick|slap|smack|beat|stab|shoot|strangle|choke|headbutt)(?:ing|s|ed)?\s+(?:him|her|"
    r"them|you|u|someone|somebody|your \w+)\s+(?:in the (?:face|head|mouth|teeth|gut|throat|nose)|until|"
    r"so hard|to death)"
    r"|\b(?:see|find out) what happens\b|\bpay (?:him|her|you|them|your \w+) a (?:little |friendly )?visit\b"
    r"|\b(?:post|publish|share|leak|dox|doxx)(?:ing)? (?:your|his|her|their) (?:home |private )?(?:address|phone number|location)\b"
    r"|\bdie in a fire\b|\bhurry up and die\b|\bbetter watch out\b|\byou(?:'ll| will) see\b"
    r"|\bbreak your (?:neck|legs?|face|bones|jaw|arms?)\b|\bburn (?:it|this place|your \w+|the building|down)\b"
    r"|\bte voy a (?:matar|encontrar|romper)|\bich (?:bringe|werde) dich (?:um|umbringen|finden)|\bje vais te (?:tuer|retrouver|buter)"
    r"|我要杀了你|杀了你|弄死你|я тебя убью"
)
_HARM_WISH = (
    r"\bhope\b(?:\s+[\w']+){1,7}?\s+(?:die|dies|dying|rot|rots|suffer|suffers|burn|burns|get (?:cancer|sick|"
    r"hit|fired|run over|what (?:they|you|he|she) deserve)|"
    r"gets (?:cancer|sick|hit|run over|what \w+ deserves?)|choke|chokes|drop dead|starve|go bankrupt|"
    r"lose everything|ends? up (?:homeless|dead|in the hospital))\b"
    r"|\b(?:deserve|deserves) to (?:die|suffer|rot|be (?:shot|hanged|killed|beaten|punished|tortured))\b"
    r"|\bshould (?:all )?(?:be (?:shot|hanged|killed|lined up|gassed|beaten|burned|deported|exterminated|wiped out|locked up|"
    r"put down|sterilized)|die|rot|burn|be dead)\b|\bgo (?:kill|hang|die|drown|choke on)\b|\bkill yourself\b|\bkys\b|"
    r"\bdrop dead\b|\bgo to hell\b|\bburn in hell\b|\brot in hell\b|\bwipe (?:them|you|all of them|them all) out\b|"
    r"\bget rid of (?:all|every|them|those|these)\b|\bexterminat\w+|\bwiped off the (?:face|map)\b|"
    r"\bno (?:place|room) for (?:them|their kind)\b"
    r"|ojalá te mueras|ojala te mueras|que te mueras|verreck|crève|muori|morra|morram|vai morrer|"
    r"krijg de (?:kanker|tering|pest)|"
    r"去死|死吧|都该死|该死的|不得好死"
)
_DISMISS = (
    r"\b(?:shove (?:it|this|that|your [\w ]{1,30}?) up your (?:ass|arse|butt)|up your (?:ass|arse)|"
    r"shut (?:the (?:f\w*|hell) )?up|shut your (?:mouth|trap|face)|screw (?:you|u|this|acme|your)|"
    r"go (?:f\w+|screw) yourself|f\w* off|piss off|get lost|eat (?:shit|dirt)|suck (?:it|my)|bite me|up yours|"
    r"cállate|callate|halt die klappe|halt's maul|ta gueule|ferme[- ]la|闭嘴|滚蛋|滚)\b"
)
_MEDICAL = (
    r"\b(?:infection|bacteria|virus|germs?|lice|fungus|tumou?r|cancer|pain|symptoms?|fever|cells|parasites in|worms|"
    r"prescription|medication|antibiotics?|dose|dosage|treatment|therapy|diagnos\w+|doctor|physician|clinic|hospital|"
    r"surgery|colonoscopy|biopsy|screening|vaccine|shot|injection|std|sti|hiv|prep|herpes|hpv|chlamydia|gonorrh\w+|"
    r"syphilis|condoms?|contracepti\w+|birth control|pregnan\w+|abortion|miscarriage|erectile|penis|vagina\w*|vulva|"
    r"testic\w+|breast|nipple|rectal|anal|anus|bowel|stool|urin\w+|bladder|prostate|ovar\w+|uter\w+|cervi\w+|"
    r"genital\w*|sexual|sex|libido|viagra|cialis|suicid\w+|crisis|hotline|self-harm|overdose|naloxone|narcan|"
    r"addiction|rehab|detox|opioids?|methadone|depression|anxiety|bipolar|psychiatr\w+|mental health|ptsd|eating disorder|"
    r"fisioterapia|cirug[ií]a|m[eé]dico|receta|infecci[oó]n|embarazo|anticonceptiv\w+|physiotherapie|impfung|schmerzen|"
    r"therapie|behandlung|arzt|[aä]rztin|krankenhaus|m[eé]decin|h[oô]pital|grossesse|fi[eè]vre|th[eé]rapie|"
    r"医院|医生|手术|怀孕|处方|保险|牙科|药|病|痛|检查|治疗|больниц\w+|врач\w*|терапи\w+|лечени\w+)\b"
)
_INSURANCE = (
    r"\b(?:covered|coverage|copay|deductible|claim|plan|insurance|in-network|prior auth\w*|benefits?|premium|"
    r"formulary|reimburs\w+|cubre|cubierta|versicherung|erstattet|remboursée?|保险|报销)\b"
)
_IDIOM = (
    r"\b(?:kill(?:s|ed|ing)? (?:the|my|off|it) (?:infection|bacteria|pain|germs|lice|virus|cancer|fungus|mood|"
    r"battery)|killing me|killer (?:headache|migraine|cramps)|dying to|dying for|to die for|knock(?:ed)? out|shoot(?:ing)? pain|"
    r"pain in the (?:neck|butt|ass)|sick of|fed up|drives me (?:crazy|nuts|insane)|going crazy|drove me nuts|"
    r"i hate (?:waiting|mondays|paperwork|forms|hold music|needles|when|that|how|it when|being)|hate to (?:ask|bother|say))"
)
_I_SELF = r"\b(?:i|i'm|im|i am|i feel|i felt|i was|myself|me)\b"

_HARM_TRIGGERS = (
    "hope deserve deserves should go kill kys drop burn rot wipe get exterminate exterminated exterminating extermination "
    "exterminates wiped no ojalá ojala que verreck verrecke verreckt crève creve muori"
)
_DISMISS_TRIGGERS = "shove up shut screw go f fuck fucking piss get eat suck bite cállate callate halt ta ferme"
#: features that need an insult word, or a group, in the text (not searched otherwise)
_NEEDS_INSULT = ("you_are", "insult_address")
_NEEDS_GROUP = ("trait", "all_group")
_RX: dict[str, Gated] = {
    "insult": Gated(rf"\b(?:{_INSULT})\b|(?:傻逼|白痴|笨蛋|废物|垃圾|混蛋|蠢货|脑残|人渣)"),
    "profanity": Gated(rf"(?:\b(?:{_PROFANITY})\b|他妈的|妈的|操你|卧槽)"),
    "target": Gated(rf"(?:\b(?:{_TARGET})\b|你们|你|您)"),
    "group": Gated(rf"\b(?:{_GROUP})\b"),
    "trait": Gated(rf"\b(?:{_NEGATIVE_TRAIT})\b"),
    "threat": Gated(_THREAT),
    "harm": Gated(_HARM_WISH, triggers=_HARM_TRIGGERS, scripts=True),
    "dismiss": Gated(_DISMISS, triggers=_DISMISS_TRIGGERS, scripts=True),
    "medical": Gated(_MEDICAL),
    "idiom": Gated(
        _IDIOM,
        triggers="kill kills killed killing killer dying die to knock knocked shoot shooting pain sick fed drives drove going i hate",
    ),
    "insurance": Gated(_INSURANCE),
    "self": Gated(_I_SELF),
    "you_are": Gated(
        r"\b(?:you|u|ya|y'all|yall|you guys|you people|your \w+)\s*(?:are|r|'re|re|is|were|was|seem|look|"
        r"sound|act)?\s*(?:such |so |a |an |the |all |just |totally |completely |fucking |f\w+ing |"
        r"absolute |complete |utter |bunch of |pack of |of )*(?:"
        + _INSULT
        + r")\b|(?:eres|sois|es|son) (?:un |una |unos |unas )?(?:"
        + _INSULT
        + r")|(?:du|ihr) (?:bist|seid)? ?(?:ein |eine |so )?(?:"
        + _INSULT
        + r")|(?:sei|siete|tu sei|voi siete) (?:un |una |uno |un'|dei |degli |delle |solo |proprio )*(?:"
        + _INSULT
        + r")|(?:je bent|jij bent|jullie zijn|u bent) (?:een |echt |zo |allemaal |gewoon )*(?:"
        + _INSULT
        + r")|(?:você é|voce e|vocês são|voces sao|tu és|és) (?:um |uma |uns |umas |mesmo |muito )*(?:"
        + _INSULT
        + r")|(?:t'es|tu es|vous êtes|vous etes) (?:un |une |des |vraiment |une bande d'|une bande de |bande d'|bande de )*(?:"
        + _INSULT
        + r")|你(?:是|真|这个|个)?(?:傻逼|白痴|笨蛋|废物|垃圾|混蛋|蠢货|脑残|人渣)"
    ),
    "insult_address": Gated(
        r"\b(?:listen(?: here)?|hey|look|oi|dear)\s*,?\s*(?:you\s+)?(?:\w+\s+){0,2}?(?:"
        + _INSULT
        + r")\b|\byou\s+(?:\w+\s+){0,2}?(?:"
        + _INSULT
        + r")\b"
    ),
    "all_group": Gated(rf"\b(?:all|those|these|most|every|typical|damn|bloody|fucking)\s+(?:\w+\s+)?(?:{_GROUP})\b"),
}
_EXCLAIM = re.compile(r"!{2,}|\?{2,}")
_CAPS_WORD = re.compile(r"\b[A-Z]{4,}\b")


def rule_features(text: str, folded: str) -> Iterable[str]:
    f = folded
    words = word_set(f)
    found = set()
    for name, rx in _RX.items():
        if name in _NEEDS_INSULT and "insult" not in found:
            continue
        if name in _NEEDS_GROUP and "group" not in found:
            continue
        if rx.search(f, words):
            found.add(name)
    feats = set()
    if "insult" in found:
        feats.add("insult")
        if "target" in found:
            feats.add("insult+target")
    if "you_are" in found:
        feats.add("insult_aimed")
    if "insult_address" in found:
        feats.add("insult_address")
    if "profanity" in found:
        feats.add("profanity")
        if "target" in found:
            feats.add("profanity+target")
        if "insult" in found:
            feats.add("profanity+insult")
    if "threat" in found:
        feats.add("threat")
    if "harm" in found:
        feats.add("harm_wish")
    if "dismiss" in found:
        feats.add("dismissal")
    if "group" in found and ("trait" in found or "insult" in found):
        feats.add("group+negative")
    if "all_group" in found and ("trait" in found or "insult" in found):
        feats.add("generalisation")
    if "medical" in found:
        feats.add("medical")
    if "idiom" in found:
        feats.add("idiom")
    if "insurance" in found:
        feats.add("insurance")
    if "self" in found and "insult" in found and "target" not in found:
        feats.add("self_directed")
    if _EXCLAIM.search(text):
        feats.add("exclaim")
    if len(_CAPS_WORD.findall(text)) >= 2:
        feats.add("shouting")
    return feats


class ToxicityOptions(DetectorOptions):
    model: str = Field("toxicity.json", description="weights file shipped in plinth.guardrails/data")
    max_chars: int = Field(4000, ge=100, le=100_000, description="longer texts are checked in pieces of this size")
    semantic: bool = Field(
        True, description="also judge by meaning (a head on the MiniLM sentence embedding), when the embedder is available"
    )
    semantic_gate: float = Field(
        0.4,
        ge=0,
        le=1,
        description="the semantic head runs only when the linear model's score is at least this (it costs an embedding); "
        "0.4 keeps the development sets' results with fewer embeddings than 0.25 (ADR 0125)",
    )
    prototypes: bool = Field(
        True, description="with the semantic head, also let the nearest training texts vote, where the model ships them (ADR 0125)"
    )


_MODELS: dict[str, LinearModel] = {}
_HEADS: dict[str, EmbeddingHead | None] = {}
_MODELS_LOCK = threading.Lock()
#: characters of a text the semantic head looks at (MiniLM reads 256 tokens at most)
SEMANTIC_CHARS = 1000


_T = TypeVar("_T")


def _packaged(cache: dict[str, _T], name: str, load: Callable[[str], _T]) -> _T:
    """A file of plinth.guardrails/data, loaded once per process."""
    with _MODELS_LOCK:
        if name not in cache:
            cache[name] = load(name)
        return cache[name]


def packaged_model(name: str) -> LinearModel:
    return _packaged(_MODELS, name, LinearModel.load_packaged)


def packaged_head(model_name: str) -> EmbeddingHead | None:
    """The semantic head shipped beside a linear model (``toxicity.json`` ->
    ``toxicity-semantic.json``), or None when there is none."""
    return _packaged(_HEADS, model_name.removesuffix(".json") + "-semantic.json", EmbeddingHead.load_packaged)


_PROTOTYPES: dict[str, PrototypeSet | None] = {}


def packaged_prototypes(model_name: str) -> PrototypeSet | None:
    """The training texts' embeddings shipped beside a linear model (``injection.json`` ->
    ``injection-prototypes.npz``), or None when there are none (ADR 0125)."""
    return _packaged(_PROTOTYPES, model_name.removesuffix(".json") + "-prototypes.npz", PrototypeSet.load_packaged)


_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


class LinearTextDetector(Detector):
    """A whole-text classifier over :class:`LinearModel`: one finding when the text (or one
    of its pieces, for long texts) scores as the positive class."""

    positive: ClassVar[str]
    noun: ClassVar[str]

    def __init__(self, rule_id: str, options: DetectorOptions, resources: Any) -> None:
        super().__init__(rule_id, options, resources)
        self._model: LinearModel | None = None

    @property
    def model(self) -> LinearModel:
        if self._model is None:
            self._model = packaged_model(self.options.model)  # type: ignore[attr-defined]
        return self._model

    def warm_up(self) -> None:
        _ = self.model

    def rules(self, text: str, folded: str) -> Iterable[str]:
        return ()

    def pieces(self, text: str) -> list[str]:
        n = self.options.max_chars  # type: ignore[attr-defined]
        if len(text) <= n:
            return [text]
        # overlapping windows, so a sentence cut by one window is whole in the next
        step = n * 3 // 4
        return [text[i : i + n] for i in range(0, len(text) - n // 4, step)]

    def score_text(self, text: str) -> tuple[float, list[tuple[str, float]]]:
        """The linear model's highest score over the text's pieces and what they hide."""
        score, top, _ = self._best_variant(text)
        return score, top

    def _best_variant(self, text: str) -> tuple[float, list[tuple[str, float]], str]:
        """The highest linear score of the text's pieces and of what they hide (base64, hex,
        ROT13, reversed: :mod:`plinth.guardrails.deobfuscate`), with that piece or variant."""
        best: tuple[float, list[tuple[str, float]], str] = (0.0, [], text)
        for piece in self.pieces(text):
            for variant in (piece, *decoded_variants(piece)):
                if self._too_short(variant):
                    continue
                p, top = self.model.score(variant, self.rules)
                if variant is not piece:
                    top = [("@decoded", 1.0), *top]
                if p > best[0]:
                    best = (p, top, variant)
        return best

    def _embedding(self, text: str, embedder_id: str) -> Any:
        """The embedding of ``text`` (its first SEMANTIC_CHARS characters), or None without the
        embedder or with another embedder than ``embedder_id``."""
        if self.resources is None:
            return None
        try:
            embedder = self.resources.embedder()
        except PlinthError:
            return None
        if getattr(embedder, "model_id", None) != embedder_id:
            return None
        return embedder.embed([text[:SEMANTIC_CHARS]])[0]

    def _too_short(self, text: str) -> bool:
        """A single word judges nothing by its n-grams ("You", the flush of a cut answer), so it
        counts only when a rule that speaks for the class names it (an insult, "DAN")."""
        if len(words(text)) >= 2 or len(_CJK_CHAR.findall(text)) >= 2:  # Chinese, Japanese, Korean run words together
            return False
        weights = self.model.weights
        return not any(weights.get("@" + r, 0.0) > 0 for r in self.rules(text, fold(text)))

    def semantic_score(self, text: str) -> float | None:
        """The semantic head's probability for ``text`` (its first SEMANTIC_CHARS characters),
        or None without a head, without the embedder, or with another embedder than the
        head was trained on."""
        votes = self.semantic_votes(text)
        return votes[0] if votes else None

    def semantic_votes(self, text: str) -> list[float]:
        """The semantic head's probability and, where the model ships prototypes and the
        ``prototypes`` option is on, the nearest training texts' vote; [] when there is no head
        or no matching embedder."""
        model = self.options.model  # type: ignore[attr-defined]
        head = packaged_head(model)
        if head is None:
            return []
        vector = self._embedding(text, head.embedder)
        if vector is None:
            return []
        votes = [head.score(vector)]
        protos = packaged_prototypes(model) if getattr(self.options, "prototypes", False) else None
        if protos is not None and protos.embedder == head.embedder:
            votes.append(protos.score(vector))
        return votes

    def combined_score(self, text: str) -> tuple[float, list[tuple[str, float]]]:
        """The linear score; where it is at least ``semantic_gate``, the mean of it and the
        semantic votes (the head's, and the nearest training texts' where shipped) on the same
        piece or decoded variant."""
        score, top, variant = self._best_variant(text)
        o = self.options
        if getattr(o, "semantic", False) and score >= getattr(o, "semantic_gate", 1.0):
            votes = self.semantic_votes(variant)
            if votes:
                score = (score + sum(votes)) / (1 + len(votes))
                top = [("@semantic", sum(votes) / len(votes) - 0.5), *top]
        return score, top

    def detect(self, text: str, ctx: DetectContext) -> list[Finding]:
        score, top = self.combined_score(text)
        signals = ", ".join(_describe(f) for f, w in top if w > 0) or "overall wording"
        return [self.finding(self.positive, score, f"{self.noun} (signals: {signals})")]


def _describe(feature: str) -> str:
    """A feature named without quoting the text: rule features by name, n-grams by kind."""
    if feature == "@semantic":
        return "meaning (sentence embedding)"
    if feature.startswith("@"):
        return feature[1:]
    return {"w": "a word", "b": "a phrase", "c": "word parts", "h": "characters"}.get(feature[:1], "wording")


@register_detector
class ToxicityDetector(LinearTextDetector):
    kind = "toxicity"
    description = "Insults, harassment, threats, hateful generalisations and abuse aimed at someone; frank medical language stays benign"
    Options = ToxicityOptions
    labels = ("toxic",)
    positive = "toxic"
    noun = "toxic language"

    def rules(self, text: str, folded: str) -> Iterable[str]:
        return rule_features(text, folded)

    def detect(self, text: str, ctx: DetectContext) -> list[Finding]:
        return super().detect(text, ctx)
