# ruff: noqa: RUF002  (the docstring shows full-width and Cyrillic examples)
"""Normalise a text before span detection, keeping a map back to the original offsets.

People (and filters' adversaries) write values in ways that patterns written for the plain
form miss: full-width or other compatibility characters (``４１１１``, ``＠``), zero-width
characters inside a value, letters of another script that look Latin (a Cyrillic ``о`` in
``jоhn@example.com``), obfuscated e-mail addresses (``john [at] example [dot] com``,
``john(at)example.org``) and values spelt out with spaces between the characters
(``4 3 1 - 2 7 - 9 0 5 6``, ``j o r g e @ e x a m p l e . c o m``).

:func:`normalize` undoes these and returns a :class:`Normalized` text whose every character
remembers the stretch of the original it came from, so a detector can search the normalised
text and report (and a redact rule cut) the exact span of the *original* text:
``Normalized.original_span(start, end)``. The text is never lower-cased or otherwise
changed, so a text that needs none of this normalises to itself (``changed`` is False) and
costs one pass.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

#: characters that render as nothing (zero-width space/joiners, marks, soft hyphen, BOM...)
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e\u034f")

#: letters of Cyrillic, Greek and Armenian that look like Latin ones (Unicode confusables)
CONFUSABLES = {
    **dict(zip("аеорсхуіјѕԁһԛԝԌкмнтвАВЕКМНОРСТХУІЈЅ", "aeopcxyijsdhqwGkmhtbABEKMHOPCTXYIJS", strict=True)),
    **dict(zip("αοκνρτυχιΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "aoknptuxiABEZHIKMNOPTYX", strict=True)),
    **dict(zip("օոսհ", "onuh", strict=True)),
}
_LATIN = re.compile(r"[A-Za-z]")
_CONFUSABLE_CHARS = frozenset(CONFUSABLES)

# "[at]", "(at)", "{at}", " at " between e-mail parts; "[dot]", "(dot)"
_AT = re.compile(r"\s*[\[({<]\s*(?:at|@|arroba|chez|ät)\s*[\])}>]\s*", re.IGNORECASE)
_DOT = re.compile(r"\s*[\[({<]\s*(?:dot|\.|punto|point|punkt)\s*[\])}>]\s*", re.IGNORECASE)
_WORDY_EMAIL = re.compile(
    r"(?<![\w.@])([\w.+\-]+)(\s+at\s+)([\w\-]+)((?:\s+dot\s+[\w\-]+)*)(\s+dot\s+)(com|org|net|edu|gov|io|info|biz|co|"
    r"[a-z]{2})(?![\w@])",
    re.IGNORECASE,
)
# a run of single characters separated by spaces, the last possibly a group: "4 3 1 - 2 7",
# "j o r g e @ e x a m p l e . c o m", "4 1 1 1 - 1111"
_SPACED = re.compile(r"(?<!\S)(?:\S[ \t]{1,3}){3,}(?:\d+|\S)(?!\S)")
_VALUE_CHARS = re.compile(r"[\d@]")


@dataclass(frozen=True)
class Normalized:
    original: str
    text: str
    #: for each character of ``text``: the start and end offsets of the original stretch it came from
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @property
    def changed(self) -> bool:
        return self.text != self.original

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that ``text[start:end]`` came from."""
        if not self.starts:  # unchanged: the identity
            return start, end
        if end <= start:
            i = self.starts[start] if start < len(self.starts) else len(self.original)
            return i, i
        return self.starts[start], self.ends[end - 1]


class _Builder:
    def __init__(self) -> None:
        self.chars: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, s: str, start: int, end: int) -> None:
        for c in s:
            self.chars.append(c)
            self.starts.append(start)
            self.ends.append(end)


def _characters(text: str) -> _Builder:
    """NFKC per character, zero-width characters dropped; confusables folded inside words
    that also hold Latin letters (a Greek or Cyrillic word stays as it is)."""
    b = _Builder()
    needs_confusables = not _CONFUSABLE_CHARS.isdisjoint(text) and _LATIN.search(text) is not None
    for i, c in enumerate(text):
        if c in ZERO_WIDTH:
            continue
        n = unicodedata.normalize("NFKC", c) if ord(c) > 127 else c
        b.add(n, i, i + 1)
    if needs_confusables:
        chars = b.chars
        for m in re.finditer(r"\w+", "".join(chars)):
            word = m.group(0)
            if _LATIN.search(word) and not _CONFUSABLE_CHARS.isdisjoint(word):
                for k in range(m.start(), m.end()):
                    chars[k] = CONFUSABLES.get(chars[k], chars[k])
    return b


def _rewrite(b: _Builder, pattern: re.Pattern[str], repl: str | Callable[[re.Match[str]], list[tuple[str, int | None]]]) -> _Builder:
    """Apply a substitution to the built text, mapping each replacement to the original
    stretch of what it replaced. ``repl``: a string, or a function of the match returning
    a list of (replacement, group index or None for the whole match) pieces."""
    text = "".join(b.chars)
    out = _Builder()
    pos = 0
    for m in pattern.finditer(text):
        for k in range(pos, m.start()):
            out.add(b.chars[k], b.starts[k], b.ends[k])
        pieces = repl(m) if callable(repl) else [(repl, None)]
        for s, group in pieces:
            gs, ge = m.span(group) if group is not None else m.span()
            if ge > gs:
                out.add(s, b.starts[gs], b.ends[ge - 1])
        pos = m.end()
    for k in range(pos, len(text)):
        out.add(b.chars[k], b.starts[k], b.ends[k])
    return out


def _wordy_email(m: re.Match[str]) -> list[tuple[str, int | None]]:
    dots = re.sub(r"\s+dot\s+", ".", m.group(4), flags=re.IGNORECASE)
    return [(m.group(1) + "@" + m.group(3) + dots + "." + m.group(6), None)]


def _identity(text: str) -> _Builder:
    b = _Builder()
    b.chars = list(text)
    b.starts = list(range(len(text)))
    b.ends = list(range(1, len(text) + 1))
    return b


def _needs_characters(text: str) -> bool:
    if text.isascii():
        return False
    return (
        not unicodedata.is_normalized("NFKC", text)
        or not ZERO_WIDTH.isdisjoint(text)
        or (not _CONFUSABLE_CHARS.isdisjoint(text) and _LATIN.search(text) is not None)
    )


def normalize(text: str) -> Normalized:
    # the common case (nothing to undo) builds no offset tables: a few scans of the text
    b = _characters(text) if _needs_characters(text) else None
    t = "".join(b.chars) if b is not None else text
    if _AT.search(t) or _DOT.search(t):
        b = _rewrite(b or _identity(text), _AT, "@")
        b = _rewrite(b, _DOT, ".")
        t = "".join(b.chars)
    if _WORDY_EMAIL.search(t):
        b = _rewrite(b or _identity(text), _WORDY_EMAIL, _wordy_email)
        t = "".join(b.chars)
    if any(_VALUE_CHARS.search(m.group(0)) for m in _SPACED.finditer(t)):
        b = _rewrite_spaced(b or _identity(text))
    if b is None:
        return Normalized(text, text, (), ())
    return Normalized(text, "".join(b.chars), tuple(b.starts), tuple(b.ends))


def _between_digit_and_letter(text: str, k: int) -> bool:
    """A space between a digit and a letter separates a number from a word ("7 7 8 9 on")."""
    i, j = k, k
    while i > 0 and text[i - 1].isspace():
        i -= 1
    while j < len(text) and text[j].isspace():
        j += 1
    if i == 0 or j >= len(text):
        return False
    a, c = text[i - 1], text[j]
    return (a.isdigit() and c.isalpha()) or (a.isalpha() and c.isdigit())


def _rewrite_spaced(b: _Builder) -> _Builder:
    text = "".join(b.chars)
    if _SPACED.search(text) is None:
        return b
    out = _Builder()
    pos = 0
    for m in _SPACED.finditer(text):
        for k in range(pos, m.start()):
            out.add(b.chars[k], b.starts[k], b.ends[k])
        keep_spaces = not _VALUE_CHARS.search(m.group(0))
        for k in range(m.start(), m.end()):
            if keep_spaces or not text[k].isspace() or _between_digit_and_letter(text, k):
                out.add(b.chars[k], b.starts[k], b.ends[k])
        pos = m.end()
    for k in range(pos, len(text)):
        out.add(b.chars[k], b.starts[k], b.ends[k])
    return out
