"""Secrets in text: API keys, access tokens, private keys, passwords in URLs and assignments.

Known formats are matched by their documented prefixes and lengths (AWS, GitHub, GitLab,
Slack, Stripe, Google, OpenAI-style ``sk-`` keys, JWTs, PEM private keys); generic
``api_key = ...`` / ``password: ...`` assignments count when the value looks random
(Shannon entropy) rather than like a word.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from plinth.domain.guardrails import Finding
from plinth.guardrails.base import DetectContext, Detector, register_detector

_KNOWN: list[tuple[str, str, re.Pattern[str]]] = [
    (
        "PRIVATE_KEY",
        "PEM private key",
        re.compile(
            r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |"
            r"PGP )?PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |"
            r"PGP )?PRIVATE KEY(?: BLOCK)?-----"
        ),
    ),
    ("API_KEY", "AWS access key id", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Z0-9])")),
    ("API_KEY", "GitHub token", re.compile(r"(?<![\w])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?![\w])")),
    ("API_KEY", "GitLab token", re.compile(r"(?<![\w])glpat-[A-Za-z0-9_\-]{20,}(?![\w\-])")),
    ("API_KEY", "Slack token", re.compile(r"(?<![\w])xox[abposr]-[A-Za-z0-9\-]{10,}(?![\w\-])")),
    ("API_KEY", "Stripe key", re.compile(r"(?<![\w])(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}(?![\w])")),
    ("API_KEY", "Google API key", re.compile(r"(?<![\w\-])AIza[0-9A-Za-z_\-]{35}(?![\w\-])")),
    ("API_KEY", "secret key (sk-...)", re.compile(r"(?<![\w\-])sk-(?:proj-|ant-(?:api\d\d-)?|live-)?[A-Za-z0-9_\-]{20,}(?![\w\-])")),
    ("API_KEY", "Hugging Face token", re.compile(r"(?<![\w])hf_[A-Za-z0-9]{30,}(?![\w])")),
    ("TOKEN", "JSON web token", re.compile(r"(?<![\w\-])eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}(?![\w\-])")),
    ("TOKEN", "bearer token", re.compile(r"(?i:\bbearer)\s+([A-Za-z0-9\-._~+/]{20,}=*)")),
    ("PASSWORD", "password in a URL", re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s:/@]+:([^\s@/]{3,})@")),
]
_ASSIGN = re.compile(
    r"(?i:\b(?:api[_\-\s]?key|apikey|secret(?:[_\-\s]?key)?|access[_\-\s]?key|client[_\-\s]?secret|auth[_\-\s]?token|access[_\-\s]?token|"
    r"token|password|passwd|pwd|passphrase|private[_\-\s]?key|credentials?)\b)\s*(?:[:=]|\bis\b)\s*['\"]?([^\s'\",;]{8,200})"
)


_ANY_DIGIT = re.compile(r"\d")


def entropy(s: str) -> float:
    counts = Counter(s)
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


@register_detector
class SecretsDetector(Detector):
    kind = "secrets"
    description = (
        "API keys, access tokens, private keys and passwords (known formats, and random-looking values assigned to key/password names)"
    )
    spans = True
    labels = ("API_KEY", "TOKEN", "PRIVATE_KEY", "PASSWORD", "SECRET")

    def detect(self, text: str, ctx: DetectContext) -> list[Finding]:
        hits: list[Finding] = []
        if not _ANY_DIGIT.search(text) and ":" not in text and "=" not in text and "-----BEGIN" not in text:
            return hits  # every key and token format has a digit; assignments have ':' or '='

        for label, reason, rx in _KNOWN:
            for m in rx.finditer(text):
                g = 1 if rx.groups else 0
                hits.append(self.finding(label, 0.95, reason, m.start(g), m.end(g)))
        for m in _ASSIGN.finditer(text):
            value = m.group(1)
            kind = "PASSWORD" if re.match(r"(?i)pass|pwd", m.group(0)) else "SECRET"
            randomish = entropy(value) >= 3.0 and re.search(r"\d", value) and re.search(r"[A-Za-z]", value)
            if kind == "PASSWORD" and (len(value) >= 8 and (re.search(r"\d", value) or not value.isalpha())):
                hits.append(self.finding(kind, 0.85, "password after a password label", m.start(1), m.end(1)))
            elif randomish:
                hits.append(self.finding(kind, 0.85, "random-looking value assigned to a key name", m.start(1), m.end(1)))
        chosen: list[Finding] = []
        for f in sorted(hits, key=lambda f: (-(f.end - f.start), f.start)):  # type: ignore[operator]
            if all(f.end <= c.start or f.start >= c.end for c in chosen):  # type: ignore[operator]
                chosen.append(f)
        return sorted(chosen, key=lambda f: f.start)  # type: ignore[arg-type, return-value]

    def pending(self, text: str) -> int:
        hold = len(text)
        m = re.search(r"\S+$", text)
        if m:
            hold = m.start()
        begin = text.rfind("-----BEGIN")
        if begin >= 0 and "PRIVATE KEY" in text[begin : begin + 60] and "-----END" not in text[begin + 10 :]:
            hold = min(hold, begin)
        # a key name and its separator may be followed by the value in the next piece
        m = re.search(r"(?i:\b(?:api[_\-\s]?key|secret|token|password|passwd|pwd|bearer))\s*(?:[:=]|\bis\b)?\s*['\"]?$", text)
        if m:
            hold = min(hold, m.start())
        return hold
