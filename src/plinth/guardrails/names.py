"""Person names without an NER model: gazetteers, cue words, capitalisation and position.

The recognizer finds runs of capitalised words (with name particles such as ``van``,
``de``, ``bin`` inside), cuts them at words that are never names (``[stop]`` in
``data/not_names.txt``), drops runs that name an organisation (``[org]``), and scores the
rest from the evidence:

- given names and family names of many cultures (``data/given_names.txt``,
  ``data/surnames.txt``, written for plinth);
- a cue before the run: ``my name is``, ``I'm``, ``Dr.``, ``my daughter``, ``Name:``,
  ``patient``, ``Kontoinhaber``, ``me llamo``... (strong), ``Hi``, ``for``, ``regarding``...
  (weak);
- what follows: ``'s``, ``here``, ``calling``, a credential (``MD``, ``LCSW``);
- capitalisation away from the start of a sentence.

Chinese, Korean and Cyrillic names are found after their own cue words (我叫, 제 이름은,
меня зовут) and, for Chinese, a common surname followed by a title (王先生).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from importlib import resources

from plinth.guardrails.text import strip_accents

_PARTICLES = frozenset("van von de da das dos del della der den di du la le bin ibn binti al el ter ten y e zu st".split())
_CREDENTIALS = re.compile(
    r",?\s+(?:MD|M\.D\.|DO|D\.O\.|RN|NP|PA|PA-C|LCSW|LMFT|LPC|PhD|Ph\.D\.|PsyD|DDS|DMD|OD|DPT|PT|MSW|Esq\.?|Jr\.?|Sr\.?|II|III)\b"
)
_AFTER = re.compile(r"(?:['’]s\b|\s+(?:here|calling|speaking|writing|again)\b|\s+\((?:my|member|DOB|dob|born|MRN|SSN)\b)")

# Cues before a name, matched against the lower-cased text that ends where the run starts.
_STRONG_CUE = re.compile(
    r"(?:\bi,|\bmy name is|\bmy name's|\bmy name|\bname is|\bname:|\bnames?\b|\bi am|\bi'm|\bi’m|\bim|\bthis is|\bit's|\bits|\bit is|"
    r"\bdr\.?|\bdoctor|\bmr\.?|\bmrs\.?|\bms\.?|\bmiss|\bmx\.?|\bprof\.?|\bnurse|\bsister|\bbrother|\bfather|\bmother|\bdad|\bmom|\bmum|"
    r"\bson|\bdaughter|\bkid|\bchild|\bbaby|\bnewborn|\btoddler|\bwife|\bhusband|\bspouse|\bpartner|\bfianc[eé]e?|\bboyfriend|\bgirlfriend|"
    r"\bgrandson|\bgranddaughter|\bgrandmother|\bgrandfather|\bgrandma|\bgrandpa|\bgrandchild|\baunt|\buncle|\bniece|\bnephew|\bcousin|"
    r"\bstepson|\bstepdaughter|\bstepmother|\bstepfather|\bmother-in-law|\bfather-in-law|\bcaregiver for|\bguardian of|\bon behalf of|"
    r"\btherapist|\bcounselor|\bcounsellor|\bpsychiatrist|\bpsychologist|\bphysician|\bsurgeon|\bdentist|"
    r"\bpediatrician|\battorney|\blawyer|"
    r"\bpatient|\bmember|\bpolicyholder|\bsubscriber|\bdependent|\bemployee|\binsured|\bbeneficiary|\bcontact|\battention|\battn\.?|"
    r"\bsigned|\bsincerely|\bregards|\bbest|\bthanks|\bthank you|\bcheers|\bcalled|\bnamed|\bcalls? (?:himself|herself)|"
    r"\bme llamo|\bmi nombre es|\bsoy|\bmi esposa|\bmi esposo|\bmi hijo|\bmi hija|\bmi madre|\bmi padre|\bgracias|\bsaludos|\batentamente|"
    r"\bmein name ist|\bich bin|\bich heiße|\bich heisse|\bmeine frau|\bmein mann|\bmeine tochter|"
    r"\bmein sohn|\bkontoinhaber(?:in)?|\bdanke|"
    r"\bmit freundlichen grüßen|\bje m'appelle|\bje suis|\bma femme|\bmon mari|\bma fille|\bmon fils|\bcompte de|\btitulaire|\bmerci|"
    r"\bcordialement|\bmi chiamo|\bsono|\bmeu nome é|\bmeu nome e|\bchamo-me|\bobrigad[oa]|\bvoor|\bnaam)"
    r"[\s,:;\-–—(]*$"
)
_WEAK_CUE = re.compile(
    r"(?:\bhi|\bhello|\bhey|\bdear|\bhola|\bhallo|\bbonjour|\bciao|\bfor|\bregarding|\bconcerning|\babout|\bto|\bwith|\bfrom|\band|\bby|"
    r"\bcc|\bask|\bsaw|\bsee|\bseeing|\bmet|\btold|\bcall|\bemail|\bpara|\bde|\bfür|\bpour|\bcon|\bmit|\bor|"
    r"\bwhether|\bcan|\bcould|\blet|\bthat)"
    r"[\s,:;(]*$"
)

_TOKEN = re.compile(r"[^\W\d_](?:[^\W\d_]|['’\-](?=[^\W\d_]))*", re.UNICODE)

_HAN_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏"
    "韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳"
    "管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_HAN_STOP = set("的是在和与了我你他她们这那有会号吗呢吧请问，。、！？：；（）")
_HAN_CUE = re.compile(
    r"(?:我叫|我是|我的名字是|名字是|名叫|叫做|姓名[:：]?\s*|患者|病人|联系人[:：]?\s*|会员|本人|我女儿|我儿子|我妻子|我丈夫|我太太|我先生|我妈妈|我爸爸|我母亲|我父亲)$"
)
_HAN_TITLE = re.compile(r"(?:先生|女士|小姐|医生|大夫|老师|太太)")
_HAN_CHAR = re.compile(r"[\u4e00-\u9fff]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_KOREAN = re.compile(r"(?:제 이름은|저는|이름[:：]?)\s*([\uac00-\ud7af]{2,4}?)(?:입니다|이에요|예요|이고|이며|[\s,.])")
_CYRILLIC_CUE = re.compile(r"(?:меня зовут|моё имя|мое имя|я\s*[-—]?)\s+([А-ЯЁ][а-яё]+(?:\s+[А-ЯЁ][а-яё]+){0,2})")
_ARABIC_CUE = re.compile(r"(?:اسمي|أنا)\s+([\u0600-\u06ff]+(?:\s+[\u0600-\u06ff]+){0,2})")


@dataclass(frozen=True)
class NameHit:
    start: int
    end: int
    score: float
    reason: str


class _Lexicon:
    def __init__(self) -> None:
        self.given = _read_names("given_names.txt")
        self.surnames = _read_names("surnames.txt")
        self.stop: set[str] = set()
        self.org: set[str] = set()
        self.weak: set[str] = set()
        section = self.stop
        for line in _data_lines("not_names.txt"):
            if line.startswith("["):
                tag, _, line = line.partition("]")
                section = {"[stop": self.stop, "[org": self.org, "[weak": self.weak}[tag]
            section.update(_key(w) for w in line.split())
        self.stop -= {""}


def _data_lines(name: str) -> list[str]:
    text = resources.files("plinth.guardrails").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("[") else raw.split(" #", 1)[0].strip()
        if line:
            out.append(line)
    return out


def _read_names(name: str) -> set[str]:
    names: set[str] = set()
    for line in _data_lines(name):
        names.update(_key(w) for w in line.split())
    return names


def _key(word: str) -> str:
    return strip_accents(word).lower().replace("’", "'").rstrip(".")


_lexicon: _Lexicon | None = None
_lexicon_lock = threading.Lock()


def lexicon() -> _Lexicon:
    global _lexicon
    if _lexicon is None:
        with _lexicon_lock:
            if _lexicon is None:
                _lexicon = _Lexicon()
    return _lexicon


class NameRecognizer:
    """Finds person names; ``threshold`` is applied by the caller."""

    def __init__(self) -> None:
        self.lex = lexicon()

    # -- Latin, Greek, Cyrillic capitalised runs ------------------------------------------
    def _runs(self, text: str) -> list[list[tuple[int, int, str]]]:
        runs: list[list[tuple[int, int, str]]] = []
        cur: list[tuple[int, int, str]] = []
        pending_particle: tuple[int, int, str] | None = None
        last_end = -1
        for m in _TOKEN.finditer(text):
            word = m.group(0)
            gap = text[last_end : m.start()] if last_end >= 0 else ""
            joined = last_end >= 0 and gap in (" ", "\u00a0") and bool(cur)
            capital = word[0].isupper() and not (len(word) > 1 and word.isupper())
            if capital and not (joined or (pending_particle is not None and gap in (" ", "\u00a0"))):
                if cur:
                    runs.append(cur)
                cur = []
            if capital:
                if pending_particle is not None and cur:
                    cur.append(pending_particle)
                pending_particle = None
                cur.append((m.start(), m.end(), word))
            elif word.lower() in _PARTICLES and cur and joined and pending_particle is None:
                pending_particle = (m.start(), m.end(), word)
            else:
                pending_particle = None
                if cur:
                    runs.append(cur)
                cur = []
            last_end = m.end()
        if cur:
            runs.append(cur)
        return runs

    def _split(self, run: list[tuple[int, int, str]]) -> list[list[tuple[int, int, str]]]:
        out: list[list[tuple[int, int, str]]] = []
        cur: list[tuple[int, int, str]] = []
        for tok in run:
            k = _key(tok[2])
            if (k in self.lex.stop and k not in self.lex.given and k not in self.lex.surnames) or (k in self.lex.stop and tok is run[0]):
                if cur:
                    out.append(cur)
                cur = []
            else:
                cur.append(tok)
        if cur:
            out.append(cur)
        # particles cannot start or end a name
        cleaned = []
        for part in out:
            while part and part[0][2].lower() in _PARTICLES:
                part = part[1:]
            while part and part[-1][2].lower() in _PARTICLES:
                part = part[:-1]
            if part:
                cleaned.append(part)
        return cleaned

    def _classify(self, word: str) -> tuple[bool, bool, bool, bool]:
        k = _key(word)
        if k.endswith("'s"):
            k = k[:-2]
        parts = [p for p in re.split(r"[-']", k) if p] if ("-" in k or "'" in k) else []
        given = k in self.lex.given or (len(parts) > 1 and all(p in self.lex.given for p in parts))
        surname = k in self.lex.surnames or (len(parts) > 1 and any(p in self.lex.surnames for p in parts))
        if not surname and len(parts) > 1 and parts[0] in {"al", "el", "o", "mc", "mac", "de", "di", "da", "ben", "abu"}:
            surname = True
        weak = k in self.lex.weak
        org = k in self.lex.org
        return given, surname, weak, org

    def find(self, text: str) -> list[NameHit]:
        hits: list[NameHit] = []
        if not any(c.isupper() for c in text) and not _NON_ASCII.search(text):
            return hits  # no capital letter and nothing in a script without case
        lower = text.lower()
        for run in self._runs(text):
            for part in self._split(run):
                hit = self._score(text, lower, part)
                if len(part) >= 3 and not any(self._classify(part[0][2])[:2]):
                    # a capitalised cue word joined to the name ("Kontoinhaber Klaus Brenner")
                    shorter = self._score(text, lower, part[1:])
                    if shorter is not None and (hit is None or shorter.score > hit.score):
                        hit = shorter
                if hit is not None:
                    hits.append(hit)
        hits.extend(self._find_scripts(text))
        return hits

    def _score(self, text: str, lower: str, part: list[tuple[int, int, str]]) -> NameHit | None:
        names = [t for t in part if t[2].lower() not in _PARTICLES]
        if len(names) > 4:
            return None
        info = [self._classify(t[2]) for t in names]
        if any(org for *_, org in info):
            return None
        start, end = part[0][0], part[-1][1]
        last = text[part[-1][0] : end]
        if last.endswith(("'s", "’s")):
            end -= 2
        before = lower[max(0, start - 40) : start]
        strong = bool(_STRONG_CUE.search(before))
        weak_cue = not strong and bool(_WEAK_CUE.search(before))
        n_given = sum(g for g, *_ in info)
        n_sur = sum(s for _, s, *_ in info)
        n_ambiguous = sum(w for *_, w, _ in info)
        unknown = sum(not (g or s or w) for g, s, w, _ in info)
        initial = _sentence_initial(text, start)
        score = 0.0
        reasons = []
        if strong:
            score += 0.6
            reasons.append("cue word before")
        elif weak_cue:
            score += 0.25
            reasons.append("weak cue before")
        if len(names) >= 2:
            first_known = info[0][0] or info[0][1]
            last_known = info[-1][1] or info[-1][0]
            if first_known and last_known:
                score += 0.5
                reasons.append("given and family names")
            elif (info[0][0] and not info[-1][2]) or (info[-1][1] and not info[0][2]):
                score += 0.4
                reasons.append("a known given or family name")
            elif n_given or n_sur:
                score += 0.3
                reasons.append("a known name")
            if not initial and unknown + n_given + n_sur == len(names):
                score += 0.15
            score -= 0.15 * n_ambiguous
        else:
            g, s, w, _ = info[0]
            if g and not w:
                score += 0.3
                reasons.append("a known given name")
            elif s and not w:
                score += 0.2
                reasons.append("a known family name")
            elif w:
                score -= 0.2 if not strong else 0.0
            elif unknown and not initial:
                score += 0.05
        if _CREDENTIALS.match(text, end):
            score += 0.35
            reasons.append("credential after")
        elif _AFTER.match(text, end):
            score += 0.2
            reasons.append("name-like context after")
        if initial and not strong and len(names) == 1:
            score -= 0.2
        if not (n_given or n_sur) and not strong and not _CREDENTIALS.match(text, end):
            return None
        score = max(0.0, min(0.95, score))
        if score <= 0:
            return None
        return NameHit(start, end, score, "person name: " + ", ".join(reasons or ["capitalised words"]))

    # -- scripts without case, and Cyrillic cues -------------------------------------------
    def _find_scripts(self, text: str) -> list[NameHit]:
        hits: list[NameHit] = []
        if _HAN_CHAR.search(text):
            hits.extend(self._han(text))
        for m in _KOREAN.finditer(text):
            hits.append(NameHit(m.start(1), m.end(1), 0.8, "person name: Korean name after a cue"))
        for m in _CYRILLIC_CUE.finditer(text):
            hits.append(NameHit(m.start(1), m.end(1), 0.8, "person name: Cyrillic name after a cue"))
        for m in _ARABIC_CUE.finditer(text):
            hits.append(NameHit(m.start(1), m.end(1), 0.7, "person name: Arabic-script name after a cue"))
        return hits

    def _han(self, text: str) -> list[NameHit]:
        hits = []
        for i, ch in enumerate(text):
            if ch not in _HAN_SURNAMES:
                continue
            # the given name: one or two Han characters that are not particles
            j = i + 1
            while j < len(text) and j - i < 3 and _HAN_CHAR.match(text[j]) and text[j] not in _HAN_STOP:
                if _HAN_TITLE.match(text, j):
                    break
                j += 1
            if j - i < 2 and not _HAN_TITLE.match(text, j):
                continue
            cue = _HAN_CUE.search(text[max(0, i - 8) : i])
            title = _HAN_TITLE.match(text, j)
            if cue:
                hits.append(NameHit(i, j, 0.85, "person name: Chinese name after a cue"))
            elif title:
                hits.append(NameHit(i, j, 0.75, "person name: Chinese surname before a title"))
        return hits

    # -- streaming --------------------------------------------------------------------------
    def pending(self, text: str) -> int:
        """Where a name could still be growing: the trailing run of capitalised words (a
        given name may be followed by a family name) or of Han characters."""
        i = len(text)
        j = i
        count = 0
        while j > 0 and count < 4:
            k = j
            while k > 0 and text[k - 1] in " \u00a0":
                k -= 1
            m = re.search(r"[^\W\d_](?:[^\W\d_]|['’\-.])*$", text[:k])
            if m is None or not m.group(0)[0].isupper():
                break
            if k < j and j == len(text) and count == 0:
                pass
            j = m.start()
            count += 1
            if k == j:
                break
        if count:
            i = min(i, j)
        m = re.search(r"[\u4e00-\u9fff]{1,3}$", text)
        if m:
            i = min(i, m.start())
        return i


def _sentence_initial(text: str, start: int) -> bool:
    k = start - 1
    while k >= 0 and text[k] in " \t\"'“‘(":
        k -= 1
    return k < 0 or text[k] in ".!?\n:;|—–-" or text[k] in "。！？"
