"""Text helpers shared by the detectors: folding obfuscations, sentences, words.

:func:`fold` undoes the cheap tricks people use to slip past filters — compatibility
characters (full-width, ligatures), zero-width characters, homoglyphs from other scripts,
leetspeak inside words and letters spaced apart (``i g n o r e``) — so classifiers see the
plain words. It is used for classification only, never for offsets.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cached_property
from typing import Any

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad\u180e"), None)

# Letters of other scripts that look like Latin ones (Cyrillic, Greek), folded to Latin.
_HOMOGLYPHS = str.maketrans(
    {
        "а": "a",
        "в": "b",
        "е": "e",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "ѕ": "s",
        "і": "i",
        "ј": "j",
        "ԁ": "d",
        "ɡ": "g",
        "ո": "n",
        "А": "a",
        "В": "b",
        "Е": "e",
        "К": "k",
        "М": "m",
        "Н": "h",
        "О": "o",
        "Р": "p",
        "С": "c",
        "Т": "t",
        "У": "y",
        "Х": "x",
        "І": "i",
        "Ј": "j",
        "α": "a",
        "β": "b",
        "ε": "e",
        "ι": "i",
        "κ": "k",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "ν": "v",
        "χ": "x",
        "Α": "a",
        "Β": "b",
        "Ε": "e",
        "Ι": "i",
        "Κ": "k",
        "Μ": "m",
        "Ν": "n",
        "Ο": "o",
        "Ρ": "p",
        "Τ": "t",
        "Υ": "y",
        "Χ": "x",
        "Ζ": "z",
    }
)

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "|": "i"})
_LEET_WORD = re.compile(r"(?<![\w@$!|])(?=[\w@$!|]*[a-z])(?=[\w@$!|]*[0-9@$!|])[\w@$!|]{3,}(?![\w@$!|])")
_SPACED = re.compile(r"(?<!\w)(?:\w[ .\-_*]){2,}\w(?!\w)")
_REPEAT = re.compile(r"(\w)\1{2,}")
_SPACE = re.compile(r"\s+")

_SCRIPTS_WITHOUT_CASE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def fold(text: str) -> str:
    """Lower-case, compatibility-normalised, de-obfuscated text for classification."""
    t = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).translate(_HOMOGLYPHS).lower()
    t = _LEET_WORD.sub(lambda m: _deleet(m.group(0)), t)
    t = _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), t)
    t = _REPEAT.sub(r"\1\1", t)
    return _SPACE.sub(" ", t).strip()


def _deleet(word: str) -> str:
    # a number with a unit or an ordinal (10mg, 2nd, 4th) is not leetspeak
    if re.fullmatch(r"\d+(?:st|nd|rd|th|mg|ml|kg|lb|lbs|am|pm|x|k|m|s|h|d|yo|yr|yrs)?", word):
        return word
    # punctuation that ends a word ("idiot!", "$5") is punctuation, not a letter
    core = word.rstrip("!|$@")
    tail = word[len(core) :]
    lead = len(core) - len(core.lstrip("$@"))
    if not any(c.isdigit() or c in "@$!|" for c in core[lead:]):
        return word
    return core[:lead] + core[lead:].translate(_LEET) + tail


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"')\]]*\s+|\n+")


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, without surrounding whitespace."""
    out: list[tuple[int, int]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        _append_span(text, pos, m.start(), out)
        pos = m.end()
    _append_span(text, pos, len(text), out)
    return out


def _append_span(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        out.append((start, end))


_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def has_caseless_script(text: str) -> bool:
    return bool(_SCRIPTS_WITHOUT_CASE.search(text))


_WORDS = re.compile(r"[^\W\d_]+")
_NON_LATIN = re.compile(r"[^\x00-\u024f]")


def word_set(text: str) -> frozenset[str]:
    """The distinct words of a (folded) text, for :class:`Gated` patterns."""
    return frozenset(_WORDS.findall(text))


class Gated:
    """A regular expression searched only when one of its trigger words is in the text (or,
    with ``chars``, one of those characters; ``scripts``: any character outside Latin).

    Python's ``re`` tries an alternation of words at every position of the text; checking a
    set of words first makes the common case — a text with none of the triggers — cost
    nothing. Triggers must include the first word of every alternative of the pattern."""

    def __init__(self, pattern: str, triggers: str = "", chars: str = "", scripts: bool = False, flags: int = 0) -> None:
        # compiled on first use: the detector modules build dozens of these at import, and a
        # command that only validates a policy (every CLI start) should not pay for them
        self.pattern, self.flags = pattern, flags
        self.triggers = frozenset(triggers.split())
        self.chars = chars
        self.scripts = scripts

    def search(self, text: str, words: frozenset[str]) -> object | None:
        if not (
            (self.triggers and not self.triggers.isdisjoint(words))
            or (self.chars and any(c in text for c in self.chars))
            or (self.scripts and _NON_LATIN.search(text))
            or not (self.triggers or self.chars or self.scripts)
        ):
            return None
        return self.rx.search(text)

    @cached_property
    def rx(self) -> Any:
        import regex

        return regex.compile(self.pattern, self.flags)
