"""Documents -> text and structural blocks (headings, paragraphs, lists, code, tables).

Every parser returns the document's text and blocks whose ``start``/``end`` are offsets into
that text, so a chunk built from blocks is an exact span of the stored text. Markdown and
plain text keep the file's text (newlines normalised to ``\\n``); HTML and PDF are converted
to text here, and the offsets refer to that text.
"""

from __future__ import annotations

import html.parser
import io
import re
from dataclasses import dataclass, field
from typing import Any

from plinth.errors import ErrorCode, PlinthError

MEDIA_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".text": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}


@dataclass(frozen=True)
class Block:
    kind: str  # "heading" | "para" | "list" | "code" | "table"
    start: int
    end: int
    level: int = 0  # heading level 1-6


@dataclass
class ParsedDocument:
    text: str
    blocks: list[Block]
    metadata: dict[str, Any] = field(default_factory=dict)
    title: str | None = None


def media_type_for(name: str) -> str | None:
    lower = name.lower()
    for ext, mt in MEDIA_TYPES.items():
        if lower.endswith(ext):
            return mt
    return None


def decode_text(data: bytes, name: str) -> str:
    if b"\x00" in data[:8192]:
        raise PlinthError(ErrorCode.UNSUPPORTED_FORMAT, f"{name}: looks binary, not text")
    for enc in ("utf-8-sig",):
        try:
            text = data.decode(enc)
            break
        except UnicodeDecodeError:
            raise PlinthError(ErrorCode.UNSUPPORTED_FORMAT, f"{name}: not valid UTF-8 text") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse(data: bytes, name: str, media_type: str) -> ParsedDocument:
    if media_type == "text/markdown":
        return parse_markdown(decode_text(data, name))
    if media_type == "text/plain":
        return parse_plain(decode_text(data, name))
    if media_type == "text/html":
        return parse_html(decode_text(data, name))
    if media_type == "application/pdf":
        return parse_pdf(data, name)
    raise PlinthError(ErrorCode.UNSUPPORTED_FORMAT, f"{name}: unsupported type {media_type!r}")


# -- Markdown -------------------------------------------------------------------------------
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST = re.compile(r"^ {0,3}([-*+]|\d{1,9}[.)])[ \t]+")
_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.S)


def _lines(text: str) -> list[tuple[int, int, str]]:
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, pos + len(line), line))
        pos += len(line) + 1
    return out


def parse_markdown(text: str) -> ParsedDocument:
    metadata: dict[str, Any] = {}
    body_start = 0
    m = _FRONT.match(text)
    if m:
        import yaml

        try:
            front = yaml.safe_load(m.group(1))
        except yaml.YAMLError:
            front = None
        if isinstance(front, dict):
            metadata = {str(k): v for k, v in front.items() if isinstance(v, (str, int, float, bool))}
            body_start = m.end()
    blocks: list[Block] = []
    lines = [ln for ln in _lines(text) if ln[0] >= body_start]
    i = 0
    para: list[tuple[int, int, str]] = []
    kind = "para"

    def flush() -> None:
        nonlocal para, kind
        if para:
            blocks.append(Block(kind, para[0][0], para[-1][1]))
        para, kind = [], "para"

    while i < len(lines):
        start, end, line = lines[i]
        if not line.strip():
            flush()
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker = fence.group(1)[0] * 3
            j = i + 1
            while j < len(lines) and not lines[j][2].lstrip().startswith(marker):
                j += 1
            last = min(j, len(lines) - 1)
            blocks.append(Block("code", start, lines[last][1]))
            i = last + 1
            continue
        atx = _ATX.match(line)
        if atx:
            flush()
            level = len(atx.group(1))
            hs = start + line.index(atx.group(2)) if atx.group(2) else start
            blocks.append(Block("heading", hs, hs + len(atx.group(2)), level))
            i += 1
            continue
        if para and len(para) == 1 and kind == "para" and _SETEXT.match(line) and not _LIST.match(para[0][2]):
            level = 1 if line.strip().startswith("=") else 2
            s0, e0, t0 = para[0]
            lead = len(t0) - len(t0.lstrip())
            blocks.append(Block("heading", s0 + lead, e0, level))
            para = []
            i += 1
            continue
        is_list = bool(_LIST.match(line))
        is_table = line.lstrip().startswith("|")
        new_kind = "list" if is_list else "table" if is_table else None
        if para and new_kind and kind != new_kind and not (kind == "list" and line.startswith((" ", "\t"))):
            flush()
        if not para:
            kind = new_kind or "para"
        para.append((start, end, line))
        i += 1
    flush()
    title = next((text[b.start : b.end] for b in blocks if b.kind == "heading"), None)
    return ParsedDocument(text=text, blocks=blocks, metadata=metadata, title=title)


# -- plain text -----------------------------------------------------------------------------
def parse_plain(text: str) -> ParsedDocument:
    blocks = []
    for m in re.finditer(r"\S(?:.*?)(?=\n[ \t]*\n|\Z)", text, re.S):
        seg = m.group(0).rstrip()
        blocks.append(Block("para", m.start(), m.start() + len(seg)))
    return ParsedDocument(text=text, blocks=blocks)


# -- HTML -----------------------------------------------------------------------------------
_BLOCK_TAGS = {
    "p",
    "div",
    "section",
    "article",
    "li",
    "tr",
    "pre",
    "blockquote",
    "dd",
    "dt",
    "table",
    "ul",
    "ol",
    "br",
    "main",
    "header",
    "footer",
}
_SKIP_TAGS = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object"}


class _HtmlText(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.pos = 0
        self.blocks: list[Block] = []
        self.skip = 0
        self.heading: tuple[int, int] | None = None  # (level, start)
        self.block_start: int | None = None
        self.kind = "para"
        self.title = ""
        self.in_title = False

    def _emit(self, s: str) -> None:
        self.out.append(s)
        self.pos += len(s)

    def _break(self) -> None:
        if self.block_start is not None:
            end = self.pos
            text = "".join(self.out)
            while end > self.block_start and text[end - 1].isspace():
                end -= 1
            if end > self.block_start:
                self.blocks.append(Block(self.kind, self.block_start, end))
            self.block_start = None
        if self.out and not "".join(self.out[-2:]).endswith("\n\n"):
            self._emit("\n\n" if not "".join(self.out[-1:]).endswith("\n") else "\n")
        self.kind = "para"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in _SKIP_TAGS:
            self.skip += 1
            return
        if self.skip:
            return
        if re.fullmatch(r"h[1-6]", tag):
            self._break()
            self.heading = (int(tag[1]), self.pos)
        elif tag in _BLOCK_TAGS:
            self._break()
            if tag == "li":
                self.kind = "list"
                self._emit("- ")
                self.block_start = self.pos - 2
            elif tag == "pre":
                self.kind = "code"
        elif tag in ("td", "th") and self.block_start is not None:
            self._emit(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if re.fullmatch(r"h[1-6]", tag) and self.heading is not None:
            level, start = self.heading
            text = "".join(self.out)
            end = self.pos
            while end > start and text[end - 1].isspace():
                end -= 1
            while start < end and text[start].isspace():
                start += 1
            if end > start:
                self.blocks.append(Block("heading", start, end, level))
            self.heading = None
            self.block_start = None
            self._emit("\n\n")
        elif tag in _BLOCK_TAGS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
        if self.skip:
            return
        s = re.sub(r"\s+", " ", data) if self.kind != "code" else data
        if not s.strip() and (not self.out or "".join(self.out[-1:]).endswith((" ", "\n"))):
            return
        if self.block_start is None and self.heading is None:
            s = s.lstrip()
            if not s:
                return
            self.block_start = self.pos
        self._emit(s)

    def close(self) -> None:
        super().close()
        self._break()


def parse_html(source: str) -> ParsedDocument:
    p = _HtmlText()
    try:
        p.feed(source)
        p.close()
    except Exception as e:  # html.parser is lenient; anything raised here is a broken file
        raise PlinthError(ErrorCode.UNSUPPORTED_FORMAT, f"HTML could not be parsed: {e}") from None
    text = "".join(p.out)
    blocks = sorted(p.blocks, key=lambda b: b.start)
    return ParsedDocument(text=text, blocks=blocks, title=p.title.strip() or None)


# -- PDF ------------------------------------------------------------------------------------
def parse_pdf(data: bytes, name: str) -> ParsedDocument:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:  # pragma: no cover - a declared dependency
        raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, "PDF ingestion needs pypdf: pip install 'pypdf>=5,<8'") from None
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise PlinthError(ErrorCode.UNSUPPORTED_FORMAT, f"{name}: the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
    except PlinthError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AttributeError, IndexError, RecursionError) as e:
        raise PlinthError(ErrorCode.UNSUPPORTED_FORMAT, f"{name}: not a readable PDF ({type(e).__name__}: {e})") from None
    parts: list[str] = []
    blocks: list[Block] = []
    pos = 0
    for number, page in enumerate(pages, start=1):
        heading = f"Page {number}"
        parts.append(heading + "\n\n")
        blocks.append(Block("heading", pos, pos + len(heading), 1))
        pos += len(heading) + 2
        body = page.replace("\r\n", "\n").replace("\r", "\n").strip()
        for m in re.finditer(r"\S.*?(?=\n[ \t]*\n|\Z)", body, re.S):
            seg = m.group(0).rstrip()
            blocks.append(Block("para", pos + m.start(), pos + m.start() + len(seg)))
        parts.append(body + "\n\n")
        pos += len(body) + 2
    text = "".join(parts)
    if not any(b.kind == "para" for b in blocks):
        raise PlinthError(ErrorCode.UNSUPPORTED_FORMAT, f"{name}: the PDF has no extractable text (scanned images are not supported)")
    return ParsedDocument(text=text, blocks=blocks)
