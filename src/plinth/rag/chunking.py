"""Structure-aware chunking: sections under their heading path, packed up to a token budget.

A chunk never crosses a heading: each section (the blocks under one heading path) is
packed on its own. Blocks (paragraphs, lists, tables, code) that fit are kept whole; a
block larger than the budget is split at sentence ends, and a sentence larger than the
budget at word boundaries. Consecutive chunks of one section share up to
``overlap_tokens`` of trailing units. Each chunk is the exact span ``text[start:end]`` of the
document text, with the heading path above it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from plinth.domain.knowledge import Chunk
from plinth.rag.parsing import Block, ParsedDocument

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+[\"')\]]*|\n|$)\s*")
HEADING_SEP = " > "


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int


def _split_long(text: str, start: int, end: int, budget: int, count: Callable[[str], int]) -> list[_Unit]:
    """Units of at most ``budget`` tokens covering text[start:end]: sentences, then words."""
    units: list[_Unit] = []
    for m in _SENTENCE.finditer(text, start, end):
        s, e = m.start(), min(m.end(), end)
        seg = text[s:e].rstrip()
        if not seg.strip():
            continue
        e = s + len(seg)
        n = count(seg)
        if n <= budget:
            units.append(_Unit(s, e, n))
            continue
        # A sentence over the budget: cut at whitespace into pieces of about `budget` tokens.
        words = [(w.start(), w.end()) for w in re.finditer(r"\S+", text[s:e])]
        piece_start = 0
        while piece_start < len(words):
            lo, hi = piece_start + 1, len(words)
            best = piece_start + 1
            while lo <= hi:  # the most words that still fit
                mid = (lo + hi) // 2
                if count(text[s + words[piece_start][0] : s + words[mid - 1][1]]) <= budget:
                    best, lo = mid, mid + 1
                else:
                    hi = mid - 1
            ps, pe = s + words[piece_start][0], s + words[best - 1][1]
            units.append(_Unit(ps, pe, count(text[ps:pe])))
            piece_start = best
    return units


def chunk_document(
    doc: ParsedDocument,
    count_tokens: Callable[[str], int],
    *,
    max_tokens: int = 200,
    overlap_tokens: int = 40,
) -> list[Chunk]:
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    overlap_tokens = max(0, min(overlap_tokens, max_tokens // 2))
    text = doc.text
    chunks: list[Chunk] = []
    headings: list[tuple[int, str]] = []  # (level, text)
    section: list[Block] = []

    def heading_path() -> str:
        return HEADING_SEP.join(h for _, h in headings)

    def emit_section() -> None:
        if not section:
            return
        units: list[_Unit] = []
        for b in section:
            seg = text[b.start : b.end]
            n = count_tokens(seg)
            if n <= max_tokens:
                units.append(_Unit(b.start, b.end, n))
            else:
                units.extend(_split_long(text, b.start, b.end, max_tokens, count_tokens))
        path = heading_path()
        i = 0
        while i < len(units):
            j, total = i, 0
            while j < len(units) and total + units[j].tokens <= max_tokens:
                total += units[j].tokens
                j += 1
            j = max(j, i + 1)
            start, end = units[i].start, units[j - 1].end
            span = text[start:end]
            chunks.append(Chunk(ordinal=len(chunks), text=span, heading=path, start=start, end=end, n_tokens=count_tokens(span)))
            if j >= len(units):
                break
            # Overlap: start the next chunk with trailing units of this one (but move forward).
            k, carried = j, 0
            while k - 1 > i and carried + units[k - 1].tokens <= overlap_tokens:
                k -= 1
                carried += units[k].tokens
            i = k
        section.clear()

    for b in doc.blocks:
        if b.kind == "heading":
            emit_section()
            title = re.sub(r"\s+", " ", text[b.start : b.end]).strip()
            while headings and headings[-1][0] >= b.level:
                headings.pop()
            headings.append((b.level, title))
        else:
            section.append(b)
    emit_section()
    return chunks


def embedding_text(chunk: Chunk) -> str:
    """What is embedded for a chunk: its heading path, then its text."""
    return f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text
