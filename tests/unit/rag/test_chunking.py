"""Parsing and structure-aware chunking, with the real MiniLM tokenizer counting tokens."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from plinth.errors import PlinthError
from plinth.rag.chunking import chunk_document
from plinth.rag.parsing import parse, parse_html, parse_markdown, parse_pdf, parse_plain
from tests.unit.rag.conftest import ACME

DOC = """---
plan: gold
year: 2027
---
# Gold plan

Intro paragraph. It has two sentences.

## Deductible

The deductible is $500 per member.

- it resets on January 1
- family deductible $1,000

```
code block
# not a heading
```

Setext heading
--------------

| a | b |
|---|---|
| 1 | 2 |

# Second top section

Last words.
"""


def _words(s: str) -> int:
    return len(s.split())


def test_markdown_blocks_headings_and_front_matter() -> None:
    d = parse_markdown(DOC)
    assert d.metadata == {"plan": "gold", "year": 2027} and d.title == "Gold plan"
    kinds = [(b.kind, d.text[b.start : b.end].splitlines()[0]) for b in d.blocks]
    assert ("heading", "Gold plan") in kinds and ("heading", "Setext heading") in kinds
    assert ("list", "- it resets on January 1") in kinds and ("table", "| a | b |") in kinds
    assert ("code", "```") in kinds and ("heading", "# not a heading") not in kinds
    assert not any("plan: gold" in d.text[b.start : b.end] for b in d.blocks)


def test_chunks_are_exact_spans_under_their_heading_path(embedder: Any) -> None:
    d = parse_markdown(DOC)
    chunks = chunk_document(d, embedder.count_tokens, max_tokens=200, overlap_tokens=0)
    for c in chunks:
        assert DOC[c.start : c.end] == c.text
    headings = [c.heading for c in chunks]
    assert headings == [
        "Gold plan",
        "Gold plan > Deductible",
        "Gold plan > Setext heading",
        "Second top section",
    ]
    # a chunk never crosses a heading
    assert "Last words." not in chunks[2].text and "Intro" not in chunks[1].text


def test_budget_is_respected_and_long_paragraphs_split_at_sentences(embedder: Any) -> None:
    sentences = [f"Sentence number {i} talks about the annual deductible." for i in range(60)]
    text = "# Big\n\n" + " ".join(sentences) + "\n"
    chunks = chunk_document(parse_markdown(text), embedder.count_tokens, max_tokens=64, overlap_tokens=16)
    assert len(chunks) > 5
    for c in chunks:
        assert c.n_tokens <= 64 and text[c.start : c.end] == c.text
        assert c.text.startswith("Sentence") and c.text.endswith(".")
    # overlap: each chunk starts inside the previous one, and the chunks move forward
    for a, b in itertools.pairwise(chunks):
        assert a.start < b.start < a.end < b.end


def test_overlap_zero_tiles_the_section(embedder: Any) -> None:
    text = "# T\n\n" + " ".join(f"Fact {i} is here." for i in range(80))
    chunks = chunk_document(parse_markdown(text), embedder.count_tokens, max_tokens=40, overlap_tokens=0)
    for a, b in itertools.pairwise(chunks):
        assert a.end <= b.start
    covered = " ".join(c.text for c in chunks)
    assert all(f"Fact {i} is here." in covered for i in range(80))


def test_a_sentence_longer_than_the_budget_is_cut_at_words(embedder: Any) -> None:
    text = "word " * 500
    chunks = chunk_document(parse_plain(text), embedder.count_tokens, max_tokens=50, overlap_tokens=0)
    assert len(chunks) >= 10 and all(c.n_tokens <= 50 for c in chunks)
    assert all(not c.text.startswith(" ") and text[c.start : c.end] == c.text for c in chunks)


def test_blocks_that_fit_stay_whole(embedder: Any) -> None:
    text = "# T\n\n" + "\n\n".join(f"Paragraph {i}. " + "More words here. " * 5 for i in range(10))
    chunks = chunk_document(parse_markdown(text), embedder.count_tokens, max_tokens=100, overlap_tokens=0)
    for c in chunks:
        assert c.text.startswith("Paragraph") and c.text.rstrip().endswith("here.")


def test_html_text_blocks_and_skipped_elements() -> None:
    html = (
        "<html><head><title>Rights</title><style>p{}</style></head><body><nav>Menu</nav>"
        "<h1>Member rights</h1><p>You may <b>appeal</b>   any decision &amp; more.</p>"
        "<ul><li>First</li><li>Second</li></ul><h2>Privacy</h2><p>We never sell it.</p>"
        "<script>var secret = 1;</script></body></html>"
    )
    d = parse_html(html)
    assert d.title == "Rights"
    assert "secret" not in d.text and "p{}" not in d.text
    spans = [(b.kind, d.text[b.start : b.end]) for b in d.blocks]
    assert ("heading", "Member rights") in spans and ("para", "You may appeal any decision & more.") in spans
    assert ("list", "- First") in spans and ("heading", "Privacy") in spans
    chunks = chunk_document(d, _words, max_tokens=50, overlap_tokens=0)
    assert [c.heading for c in chunks][-1] == "Member rights > Privacy"


def test_pdf_pages_become_sections() -> None:
    data = (ACME / "policies" / "telehealth-and-nurse-line.pdf").read_bytes()
    d = parse_pdf(data, "t.pdf")
    assert "Nurse Line" in d.text and d.blocks[0].kind == "heading"
    chunks = chunk_document(d, _words, max_tokens=200, overlap_tokens=0)
    assert chunks and chunks[0].heading == "Page 1" and all(d.text[c.start : c.end] == c.text for c in chunks)


@pytest.mark.parametrize(
    ("data", "media_type", "needle"),
    [
        (b"%PDF-1.4\nthis is not really a pdf", "application/pdf", "not a readable PDF"),
        (b"\xff\xfe\x00bin\x00ary", "text/plain", "binary"),
        (b"caf\xe9", "text/markdown", "UTF-8"),
    ],
)
def test_broken_files_give_clear_errors(data: bytes, media_type: str, needle: str) -> None:
    with pytest.raises(PlinthError) as e:
        parse(data, "f", media_type)
    assert needle in e.value.message


def test_crlf_is_normalised_and_offsets_hold() -> None:
    d = parse(b"# A\r\n\r\nOne line.\r\nTwo line.\r\n", "a.md", "text/markdown")
    assert "\r" not in d.text
    chunks = chunk_document(d, _words, max_tokens=50, overlap_tokens=0)
    assert chunks[0].text == "One line.\nTwo line." and d.text[chunks[0].start : chunks[0].end] == chunks[0].text
