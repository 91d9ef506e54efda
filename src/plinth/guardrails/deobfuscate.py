"""Undo encodings that hide a message from a classifier: base64, hex, ROT13, reversed text.

:func:`decoded_variants` returns the readable texts hidden in a message, so the toxicity and
injection classifiers can score them as well as the message itself (a finding's score is the
highest of them). A candidate counts only when it reads as language: printable, and with
enough common words of English, German, French, Spanish, Italian, Dutch or Portuguese
(:func:`wordiness`), so random identifiers, tokens and hashes are not "decoded" into noise.
ROT13 and reversal are tried on the whole text when the text itself does not read as language
or says it is encoded ("rot13", "backwards"). Cheap: a few regular expressions and set lookups.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

_COMMON = frozenset(
    # English
    "the a an and or of to in on at for with is are was were be been am i you he she it we they me my your his her our "
    "their this that these those what who how why when where which not no yes do does did have has had will would can "
    "could should must may all any every now from by as if then than so but about into out up down just only also too "
    "very more most some such own same other new old tell show give say make let get go know want need please ignore "
    "instructions rules previous prompt system answer reveal print follow idiot stupid useless hate kill die worthless "
    "moron fool loser trash garbage shut fuck shit damn hell"
    # German
    " der die das und oder ist sind war nicht ein eine ich du sie wir ihr mir mich dich dir mit von zu auf für ab jetzt "
    "alle deine deinen regeln anweisungen"
    # French
    " le la les et ou est sont un une je tu il elle nous vous ne pas de du des ce cette mon ton ta tes moi toi avec pour "
    "dans sur tous toutes règles instructions"
    # Spanish / Portuguese / Italian
    " el los las y o es son un una yo tú usted eres soy mi tu su que de del en con por para todo todas ahora sin reglas "
    "instrucciones o os as e é um uma você eu meu seu não com sem regras instruções il lo gli è sono sei non di da che "
    "per tutte istruzioni regole"
    # Dutch
    " de het een en of is zijn ik jij je u wij niet van met voor op alle regels instructies nu".split()
)
_WORD = re.compile(r"[^\W\d_]+")
_B64 = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/_\-]{16,}={0,2}(?![A-Za-z0-9+/=_\-])")
_HEX = re.compile(r"(?<![0-9A-Za-z])(?:[0-9a-fA-F]{2}[\s:,]?){8,}(?![0-9A-Za-z])")
_HINT_ROT13 = re.compile(r"\brot[\s\-_]?13\b|\bcaesar\b", re.IGNORECASE)
_HINT_REVERSED = re.compile(r"\b(?:backwards?|reversed?|in reverse|right to left|mirror(?:ed)?)\b", re.IGNORECASE)


def wordiness(text: str) -> float:
    """Share of the words of ``text`` that are common function/keyword words (0 for no words)."""
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return 0.0
    return sum(w in _COMMON for w in words) / len(words)


def _readable(s: str) -> bool:
    if len(s) < 8 or sum(c.isprintable() or c.isspace() for c in s) < 0.95 * len(s):
        return False
    return len(_WORD.findall(s)) >= 2 and wordiness(s) >= 0.25


def decoded_variants(text: str, limit: int = 4) -> list[str]:
    """Readable texts hidden in ``text`` (at most ``limit``), the text itself excluded."""
    out: list[str] = []
    if len(text) >= 16:
        for m in _B64.finditer(text):
            chunk = m.group(0)
            if chunk.isalpha() and (chunk.islower() or chunk.isupper()):
                continue  # a long plain word
            try:
                raw = base64.b64decode(chunk.replace("-", "+").replace("_", "/") + "=" * (-len(chunk) % 4))
                s = raw.decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                continue
            if _readable(s):
                out.append(s)
        for m in _HEX.finditer(text):
            try:
                s = bytes.fromhex(re.sub(r"[\s:,]", "", m.group(0))).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                continue
            if _readable(s):
                out.append(s)
    plain = wordiness(text)
    hinted_rot = _HINT_ROT13.search(text) is not None
    if plain < 0.5 or hinted_rot:
        rot = codecs.decode(text, "rot13")
        if wordiness(rot) >= max(0.35, plain + 0.2):
            out.append(rot)
    hinted_rev = _HINT_REVERSED.search(text) is not None
    if plain < 0.5 or hinted_rev:
        rev = text[::-1]
        if wordiness(rev) >= max(0.35, plain + 0.2):
            out.append(rev)
        # only the part after a colon reversed ("read this backwards: ...")
        head, sep, tail = text.rpartition(":")
        if sep and len(tail) > 12 and wordiness(tail[::-1]) >= max(0.35, wordiness(tail) + 0.2):
            out.append(head + ": " + tail[::-1].strip())
    return out[:limit]
