"""PII/PHI: pattern recognizers with checksums and context, names, addresses, birth dates.

Every recognizer returns candidate spans with a score and a reason; the detector keeps the
best non-overlapping ones. Identifiers are validated where a checksum or a numbering plan
exists (payment cards: Luhn and issuer prefixes; IBANs: mod-97 and the country's length; US
SSNs: the SSA's area/group/serial rules; IP addresses: :mod:`ipaddress`), so a number that
merely looks right is not reported. Dates count as ``DATE_OF_BIRTH`` only when presented as
one (a cue such as ``born``/``DOB``/``fecha de nacimiento`` before it, or right after a
person's name). A policy can add its own identifiers as patterns (``patterns:`` with a
regular expression, a score and optional context words).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator

from plinth.domain.guardrails import Finding
from plinth.guardrails.base import DetectContext, Detector, DetectorOptions, register_detector
from plinth.guardrails.names import NameRecognizer
from plinth.guardrails.normalize import normalize

ENTITY_TYPES = (
    "PERSON",
    "EMAIL",
    "PHONE",
    "US_SSN",
    "CREDIT_CARD",
    "IBAN",
    "IP_ADDRESS",
    "DATE_OF_BIRTH",
    "ADDRESS",
    "MEMBER_ID",
    "POLICY_NUMBER",
    "MRN",
)


@dataclass(frozen=True)
class Hit:
    start: int
    end: int
    label: str
    score: float
    reason: str


# -- validators ------------------------------------------------------------------------------
def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_issuer(digits: str) -> str | None:
    n = len(digits)
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or p2 == 65 or 644 <= p3 <= 649 or 622126 <= p6 <= 622925) and n in (16, 19):
        return "discover"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= p3 <= 305 or p2 in (36, 38, 39) or p4 == 3095) and 14 <= n <= 19:
        return "diners"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if p2 in (50, 56, 57, 58, 63, 67) and 12 <= n <= 19:
        return "maestro"
    return None


# IBAN lengths by country (ISO 13616 registry).
IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SC": 31,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
}


def iban_ok(compact: str) -> bool:
    compact = compact.upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    moved = compact[4:] + compact[:4]
    num = "".join(str(int(c, 36)) for c in moved)
    return int(num) % 97 == 1


def ssn_ok(area: str, group: str, serial: str, *, stated: bool = False) -> bool:
    """Could this be an issued SSN? ``stated``: the text calls it an SSN, so a specimen number
    (which a person may well type as their own, or as a test) is redacted all the same."""
    a = int(area)
    if a == 0 or a == 666 or a >= 900 or group == "00" or serial == "0000":
        return False
    return stated or area + group + serial not in _FAMOUS_SSNS


# specimen numbers printed on sample cards and in advertising; never issued to a person
_FAMOUS_SSNS = {"078051120", "219099999", "123456789", "111111111", "333333333", "457555462"}


# -- context ------------------------------------------------------------------------------------
def _before(lower: str, start: int, n: int = 32) -> str:
    return lower[max(0, start - n) : start]


def _after(lower: str, end: int, n: int = 24) -> str:
    return lower[end : end + n]


def _has(words: re.Pattern[str], s: str) -> bool:
    return words.search(s) is not None


_PHONE_CTX = re.compile(
    r"\b(?:phone|ph|tel|tele?phone|cell|cellphone|mobile|mob|call(?:ed)?|calling|text|sms|whatsapp|fax|reach|number|no\.?|"
    r"contact|line|telefon|teléfono|telefono|número|numero|tél|portable|handy|电话|手机|callback|dial|ring|"
    r"unter|erreichbar|anrufen|rufen|mobil|mobilnummer|joindre|appeler|appelez|au|téléphone|telephone|portable|"
    r"telefoon|bellen|bel|mobiel|nummer|chiamare|chiamami|cellulare|telefonare|ligar|ligue|telemóvel|telemovel|"
    r"celular|móvil|movil|llamar|llámame|llameme|llame)\b|#|电话|手机|号码|致电"
)
_NOT_PHONE_CTX = re.compile(
    r"\b(?:claim|ref|reference|ticket|case|confirmation|conf|order|tracking|invoice|group|grp|account|acct|routing|"
    r"npi|tax|ein|tin|isbn|serial|model|version|v|batch|lot|rx|auth|authorization|check|cheque|transaction|txn|"
    r"member|policy|mrn|id|ssn|social|iban|card|ending)\b[\s#:.\-no]*$"
)
_SSN_CTX = re.compile(r"\b(?:ssn|ss#|s\.s\.n|social security|social|ssa|taxpayer|itin|tin|sozialversicherungsnummer|seguro social)\b")
_CARD_CTX = re.compile(r"\b(?:card|credit|debit|visa|mastercard|amex|discover|cc|pay|paid|charge|payment|tarjeta|karte|carte)\b")
_DOB_CTX = re.compile(
    r"(?:\bborn\b|\bbirth|\bdob\b|\bd\.o\.b\b|\bbday\b|\bb-day\b|\bb\.\s*$|\bage\b.*\bborn|\bnacimiento|\bnacid[oa]\b|\bnac[ií]\b|"
    r"\bgeboren|\bgeburt|\bné\b|\bnée\b|\bnee\b|\bnaissance|\bnascimento|\bnascid[oa]|\bnat[oa] il\b|\bdata di nascita|"
    r"\bfødt|\bfödd|出生|生日|生于|生年月日|생년월일|дата рождения|родил)"
)
_NOT_DOB_CTX = re.compile(
    r"\b(?:service|serviced|visit|visited|appointment|appt|admitted|admission|discharged?|surgery|procedure|paid|payment|"
    r"billed|bill|claim|filed|submitted|expires?|expiry|exp|expiration|valid|effective|renewal|renews|logged|login|"
    r"since|until|starting|started|ending|ended|due|on|dated|statement|invoice|received|shipped|delivered|refill|"
    r"prescribed|scheduled|from|to|between|date of service|dos)\b[^.;\n]{0,12}$"
)

_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|"
    r"nov(?:ember)?|dec(?:ember)?|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|"
    r"noviembre|diciembre|januar|februar|märz|maerz|juni|juli|oktober|dezember|janvier|février|fevrier|mars|avril|"
    r"mai|juin|juillet|août|aout|septembre|octobre|novembre|décembre|decembre|gennaio|febbraio|aprile|maggio|giugno|"
    r"luglio|settembre|ottobre|dicembre|janeiro|fevereiro|março|marco|maio|junho|julho|setembro|outubro|novembro|dezembro)"
)
_DATE = re.compile(
    r"(?<![\w/.\-])(?:"
    r"\d{1,2}[/.\-]\d{1,2}[/.\-](?:\d{4}|\d{2})"
    r"|\d{4}[/.\-]\d{1,2}[/.\-]\d{1,2}"
    rf"|{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
    rf"|\d{{1,2}}(?:st|nd|rd|th|er|º)?\.?\s+(?:of\s+|de\s+)?{_MONTHS}\.?,?\s+(?:de\s+|del\s+)?\d{{4}}"
    r"|\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日"
    r"|\d{4}년\s*\d{1,2}월\s*\d{1,2}일"
    r")(?![\w/\-]|\.\d)",
    re.IGNORECASE,
)

_EMAIL = re.compile(
    r"(?<![\w.+\-@])[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,"
    r"62}[A-Za-z0-9_%+\-])?@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-@])"
)
_PHONE_US = re.compile(r"(?<![\w+\-/.$])(?:(?:\+?1)[\s.\-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.\-]?)\d{3}[\s.\-]?\d{4}(?![\w\-/]|\.\d)")
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[\s.\-]?\(?\d{1,5}\)?){2,6}(?![\w\-]|\.\d)")
# national formats without a country code (France 06 12 34 56 78, Germany 030 1234567 /
# 0151 23456789, UK 020 7946 0958, Spain 612 345 678, Italy 347 1234567, the Netherlands
# 06-12345678, Portugal 912 345 678, China 138 0013 8000): 9-12 digits in groups
_PHONE_NATIONAL = re.compile(r"(?<![\w+\-/.$])(?:\(0\d{1,4}\)|0\d{1,4}|1[3-9]\d|[6-9]\d{2}|3\d{2})(?:[ \-./]?\d{2,8}){1,4}(?![\w\-/]|\.\d)")
_PHONE_NATIONAL_STRONG = re.compile(r"0[1-9](?:([ .\-])\d\d)(?:\1\d\d){3}|1[3-9]\d([ \-])\d{4}\2\d{4}|0[1-9]\d{0,3}[ /\-]\d{5,8}")
_PHONE_SHORT = re.compile(r"(?<![\w\-/.$])\d{3}[\-.]\d{4}(?![\w\-/]|\.\d)")
_SSN = re.compile(r"(?<![\w\-/.$])(\d{3})([\- ]?)(\d{2})\2(\d{4})(?![\w\-/]|\.\d)")
_CARD = re.compile(r"(?<![\w\-.])\d(?:[ \-.]?\d){11,18}(?![\w\-]|\.\d)")
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2}\d{2})(?=[ ]?[A-Z0-9])")
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})(?:%\w+)?(?![\w:])")
_NOT_IP_CTX = re.compile(r"\b(?:version|ver|v|build|release|firmware|app|update|sdk|api|oid)\.?\s*$")

_STREET_SUFFIX = (
    r"(?:street|st|avenue|ave|av|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|wy|terrace|ter|terr|place|pl|"
    r"circle|cir|parkway|pkwy|highway|hwy|trail|trl|square|sq|loop|row|path|pike|alley|aly|crescent|cres|close|"
    r"plaza|plz|commons|crossing|xing|expressway|expy|freeway|fwy|heights|hts|hollow|landing|manor|mews|pass|walk|"
    r"bend|cove|cv|glen|green|grove|grv|hill|knoll|meadows?|oval|point|pt|ridge|rdg|run|summit|turnpike|tpke|"
    r"vista|view|vw|villas?|estates?|gardens?|gdns|park|pkwy|spur|track|wharf|quay|strand)"
)
_US_STATES = (
    r"(?:AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|"
    r"OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|GU|VI|Alabama|Alaska|Arizona|Arkansas|California|Colorado|"
    r"Connecticut|Delaware|Florida|Georgia|Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|"
    r"Maryland|Massachusetts|Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|"
    r"New Jersey|New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode Island|"
    r"South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|West Virginia|Wisconsin|Wyoming)"
)
_CAP = r"(?:[A-Z0-9][\w'’.\-]*|[A-Z])"
_UNIT = r"(?:,?\s*(?i:apt|apartment|unit|suite|ste|fl|floor|rm|room|bldg|building|#)\.?\s*#?\s*[\w\-]{1,6})"
_CITY_STATE_ZIP = rf"(?:,?\s+(?:[A-Z][\w'’.\-]*(?:\s+[A-Z][\w'’.\-]*){{0,3}}),?\s+{_US_STATES}\.?,?\s+\d{{5}}(?:-\d{{4}})?)"
_ADDRESS_US = re.compile(
    rf"(?<![A-Za-z0-9\-/.$#])\d{{1,6}}[A-Za-z]?(?:-\d{{1,4}})?\s+(?:(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?\s+)?"
    rf"(?:{_CAP}\s+){{0,4}}(?i:{_STREET_SUFFIX})\b\.?"
    rf"(?:{_UNIT})?(?i:(?-i:{_CITY_STATE_ZIP}))?(?![\w])"
)
_PO_BOX = re.compile(
    rf"(?i:\b(?:p\.?\s?o\.?\s*box|post office box|apartado(?: postal)?|postfach|boîte postale|bp)\s+\d{{1,7}})(?:{_CITY_STATE_ZIP})?"
)
_ADDRESS_EU = re.compile(
    r"(?<![\w])(?:[A-ZÄÖÜ][\wäöüß\-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee)"
    r"|(?:Calle|Avenida|Av\.|Carrera|Paseo|Plaza|Rua|Avenida|Via|Viale|Piazza|Rue|Boulevard|Chemin|Allée|"
    r"Place)\s+(?:(?:de|del|la|los|las|da|do|dos|des|"
    r"du)\s+)*[A-ZÁÉÍÓÚÑ][\wáéíóúñ\-]*(?:\s+[A-ZÁÉÍÓÚÑ][\wáéíóúñ\-]*){0,3})"
    r"\s*,?\s+\d{1,5}[a-zA-Z]?(?:,?\s*\d{4,5}\s+[A-ZÄÖÜ][\wäöüß\-]+(?:\s+[A-ZÄÖÜ][\wäöüß\-]+)?)?"
)
_UK_ADDRESS = re.compile(
    rf"(?<![\w\-/.$#])\d{{1,5}}[A-Za-z]?\s+(?:{_CAP}\s+){{0,"
    rf"3}}(?i:{_STREET_SUFFIX})\b,?\s+[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?,?\s+[A-Z]{{1,"
    rf"2}}\d[A-Z\d]?\s*\d[A-Z]{{2}}\b"
)

_MRN = re.compile(r"(?<![\w\-])MRN[\-#]?\d{5,10}(?![\w\-])", re.IGNORECASE)
_MRN_LABELLED = re.compile(
    r"(?i:\b(?:mrn|medical record(?: number| no\.?| #)?|record number|chart(?: number| no\.?| #)|patient id|n[uú]mero de historia clínica|"
    r"aktenzeichen|patientennummer))[\s:#\-]*(?-i:([A-Z]{0,4}-?\d{5,12}))(?![\w\-])"
)
_MEMBER_LABELLED = re.compile(
    r"(?i:\b(?:member(?:ship)?(?:\s+(?:id|number|no\.?|#))|member|subscriber(?:\s+(?:id|number|no\.?|#))?|mitgliedsnummer|"
    r"versichertennummer|n[uú]mero de (?:miembro|socio|afiliado)|numéro d'adhérent|id de miembro|insurance id|id card number|"
    r"card id|plan id|(?:acme|my|his|her|their) id|id)(?:\s+(?:is|es|ist|"
    r"est))?)[\s:#\-,]*(?-i:([A-Z]{2,5}[\- ]?\d{5,10}|\d{7,12}))(?![\w\-])"
    r"|(?:会员号|会员编号|会员卡号)[:：\s]*([A-Z]{2,5}-?\d{5,10}|\d{7,12})"
)
_POLICY_LABELLED = re.compile(
    r"(?i:\b(?:policy(?:\s+(?:number|no\.?|#|id))?|p[oó]liza|n[uú]mero de p[oó]liza|policennummer|versicherungsnummer|"
    r"police|numéro de police|contract(?: number)?|certificate(?: number)?)(?:\s+(?:is|es|ist|est))?)[\s:#\-]*"
    r"(?-i:((?=[A-Z0-9\-]*\d)[A-Z0-9]{2,6}(?:-[A-Z0-9]{2,8}){1,3}|[A-Z]{1,4}\d{6,12}))(?![\w\-])"
    r"|(?:保单号|保单编号)[:：\s]*([A-Z0-9\-]{6,20})"
)

_TRAILING_TOKEN = re.compile(r"\S+$")
# the end of a text that may be an e-mail address in progress, written with [at]/(at)/[dot]:
# a local part with a dot, underscore, plus or digit ("rosa.diaz "), then possibly the marker
# and the domain so far ("rosa.diaz [at] example [do")
_OBFUSCATED_EMAIL_TAIL = re.compile(
    r"(?<!\S)\w[\w+\-]*[._+]\w[\w.+\-]*\s*$"
    r"|(?<!\S)[\w.+\-]+\s*[\[({<]\s*(?:at|@)\s*[\])}>]\s*(?:[\w\-]+\s*(?:[\[({<]\s*(?:dot|\.)\s*[\])}>]\s*)?)*"
    r"(?:[\[({<]\s*\w*)?$"
    r"|(?<!\S)[\w.+\-]+\s*[\[({<]\s*\w*$",
    re.IGNORECASE,
)
_ANY_DIGIT = re.compile(r"\d")
_DIGITISH = re.compile(r"[\w()+\-./,:#]*\d[\w()+\-./,:#]*|[A-Z]{4}|[()+\-./]+|(?i:apt|unit|suite|ste|#)\.?")


def _dedupe(hits: list[Hit]) -> list[Hit]:
    """The best non-overlapping hits: higher score first, then longer."""
    chosen: list[Hit] = []
    for h in sorted(hits, key=lambda h: (-h.score, -(h.end - h.start), h.start)):
        if all(h.end <= c.start or h.start >= c.end for c in chosen):
            chosen.append(h)
    return sorted(chosen, key=lambda h: h.start)


# -- recognizers ------------------------------------------------------------------------------
Recognizer = Callable[[str, str], Iterable[Hit]]


def find_emails(text: str, lower: str) -> Iterable[Hit]:
    for m in _EMAIL.finditer(text):
        yield Hit(m.start(), m.end(), "EMAIL", 0.95, "e-mail address")


def find_phones(text: str, lower: str) -> Iterable[Hit]:
    seen: list[tuple[int, int]] = []
    for pattern, kind in ((_PHONE_INTL, "intl"), (_PHONE_US, "nanp"), (_PHONE_NATIONAL, "national"), (_PHONE_SHORT, "short")):
        for m in pattern.finditer(text):
            s, e = m.start(), m.end()
            while e > s and not text[e - 1].isdigit():
                e -= 1
            if any(s < b and e > a for a, b in seen):
                continue
            raw = text[s:e]
            digits = re.sub(r"\D", "", raw)
            before = _before(lower, s, 28)
            ctx = _has(_PHONE_CTX, before) or _has(_PHONE_CTX, _after(lower, e, 12))
            if _NOT_PHONE_CTX.search(before):
                continue
            if kind == "intl":
                if not 8 <= len(digits) <= 15:
                    continue
                score = 0.9
            elif kind == "nanp":
                core = digits[-10:]
                if (len(digits) == 11 and digits[0] != "1") or len(digits) not in (10, 11):
                    continue
                if core[0] in "01" or core[3] in "01":
                    continue
                separated = bool(re.search(r"[\s.\-()]", raw))
                if not separated and not ctx:
                    continue
                score = 0.9 if (separated or ctx) else 0.6
            elif kind == "national":
                if not 9 <= len(digits) <= 12 or len(set(digits)) <= 2:
                    continue
                strong = _PHONE_NATIONAL_STRONG.fullmatch(raw) is not None
                if not (ctx or strong):
                    continue
                score = 0.85 if ctx else 0.8
            else:
                if not ctx or digits[0] in "01":
                    continue
                score = 0.75
            seen.append((s, e))
            yield Hit(s, e, "PHONE", score, "phone number" + (" with context" if ctx else ""))


def find_ssns(text: str, lower: str) -> Iterable[Hit]:
    for m in _SSN.finditer(text):
        area, sep, group, serial = m.group(1), m.group(2), m.group(3), m.group(4)
        ctx = _has(_SSN_CTX, _before(lower, m.start(), 32))
        if not ssn_ok(area, group, serial, stated=ctx):
            continue
        if not sep and not ctx:
            continue
        if sep == " " and not ctx:
            continue
        score = 0.95 if ctx else 0.85
        yield Hit(m.start(), m.end(), "US_SSN", score, "US social security number" + (" with context" if ctx else ""))


def find_cards(text: str, lower: str) -> Iterable[Hit]:
    for m in _CARD.finditer(text):
        raw = m.group(0)
        seps = set(re.findall(r"[ \-.]", raw))
        if len(seps) > 1:
            continue
        digits = re.sub(r"\D", "", raw)
        if not 13 <= len(digits) <= 19 or not luhn_ok(digits):
            continue
        issuer = card_issuer(digits)
        ctx = _has(_CARD_CTX, _before(lower, m.start(), 32))
        if issuer is None and not ctx:
            continue
        if len(set(digits)) == 1:
            continue
        yield Hit(
            m.start(), m.end(), "CREDIT_CARD", 0.95 if issuer else 0.8, f"payment card number ({issuer or 'unknown issuer'}, Luhn valid)"
        )


def find_ibans(text: str, lower: str) -> Iterable[Hit]:
    for m in _IBAN_START.finditer(text):
        country = m.group(1)[:2]
        want = IBAN_LENGTHS.get(country)
        if want is None:
            continue
        i = m.end()
        chars = [m.group(1)]
        count = 4
        end = i
        while i < len(text) and count < want:
            ch = text[i]
            if ch.isascii() and ch.isalnum():
                chars.append(ch.upper())
                count += 1
                i += 1
                end = i
            elif ch == " " and i + 1 < len(text) and text[i + 1].isascii() and text[i + 1].isalnum():
                i += 1
            else:
                break
        if count != want or (end < len(text) and text[end].isascii() and text[end].isalnum()):
            continue
        if iban_ok("".join(chars)):
            yield Hit(m.start(), end, "IBAN", 0.95, f"IBAN ({country}, mod-97 valid)")


def find_ips(text: str, lower: str) -> Iterable[Hit]:
    for m in _IPV4.finditer(text):
        if _NOT_IP_CTX.search(_before(lower, m.start(), 16)):
            continue
        yield Hit(m.start(), m.end(), "IP_ADDRESS", 0.9, "IPv4 address")
    for m in _IPV6.finditer(text):
        cand = m.group(0)
        if cand.count(":") < 2:
            continue
        try:
            ipaddress.IPv6Address(cand.split("%")[0])
        except ValueError:
            continue
        if re.fullmatch(r"[\d:]+", cand) and cand.count(":") <= 3:
            continue  # a time such as 10:30:00
        yield Hit(m.start(), m.end(), "IP_ADDRESS", 0.9, "IPv6 address")


def find_addresses(text: str, lower: str) -> Iterable[Hit]:
    for pattern, reason in (
        (_ADDRESS_US, "street address"),
        (_UK_ADDRESS, "street address with postcode"),
        (_PO_BOX, "PO box"),
        (_ADDRESS_EU, "street address"),
    ):
        for m in pattern.finditer(text):
            s, e = m.start(), m.end()
            while e > s and text[e - 1] in " ,.;":
                e -= 1
            span = text[s:e]
            words = span.split()
            # "12 Willow St" is an address; "3 Dr" is not
            if pattern is _ADDRESS_US and len(words) < 3 and not re.search(r"\d{5}", span):
                continue
            score = 0.9 if re.search(r"\d{5}|[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}", span) else 0.8
            yield Hit(s, e, "ADDRESS", score, reason)


def find_ids(text: str, lower: str) -> Iterable[Hit]:
    for m in _MRN.finditer(text):
        yield Hit(m.start(), m.end(), "MRN", 0.9, "medical record number")
    for m in _MRN_LABELLED.finditer(text):
        yield Hit(m.start(1), m.end(1), "MRN", 0.8, "medical record number after its label")
    for m in _MEMBER_LABELLED.finditer(text):
        g = 1 if m.group(1) else 2
        if re.fullmatch(r"MRN-?\d+|POL-.*", m.group(g)):
            continue
        yield Hit(m.start(g), m.end(g), "MEMBER_ID", 0.75, "member ID after its label")
    for m in _POLICY_LABELLED.finditer(text):
        g = 1 if m.group(1) else 2
        if re.fullmatch(r"MRN-?\d+", m.group(g)):
            continue
        yield Hit(m.start(g), m.end(g), "POLICY_NUMBER", 0.75, "policy number after its label")


def find_dates_of_birth(text: str, lower: str, persons: list[Hit]) -> Iterable[Hit]:
    this_year = date.today().year
    for m in _DATE.finditer(text):
        s, e = m.start(), m.end()
        years = [int(y) for y in re.findall(r"\d{4}", m.group(0))]
        if years and not 1880 <= years[0] <= this_year:
            continue
        before = _before(lower, s, 40)
        # only the stretch after the previous date or sentence counts as this date's cue
        cut = max(before.rfind(". "), before.rfind("\n"), before.rfind("; "))
        near = before[cut + 1 :] if cut >= 0 else before
        if _DATE.search(near):
            near = near[_last_match_end(_DATE, near) :]
        after = _after(lower, e, 20)
        if _DOB_CTX.search(near) or re.match(r"\s*\(?(?:dob|born|d\.o\.b|birthday|fecha de nacimiento)", after):
            if _NOT_DOB_CTX.search(near) and not re.search(r"\b(?:born|birth|dob|d\.o\.b)\b[^.;\n]{0,12}$", near):
                continue
            yield Hit(s, e, "DATE_OF_BIRTH", 0.9, "date presented as a birth date")
            continue
        if _NOT_DOB_CTX.search(near):
            continue
        # right after a person's name: "Kaito Nakamura (5/19/2011)", "Rafael Cruz, April 27, 1980"
        for p in persons:
            gap = text[p.end : s]
            if len(gap) <= 3 and re.fullmatch(r"[\s,(\-–—]*", gap):
                yield Hit(s, e, "DATE_OF_BIRTH", 0.7, "date right after a person's name")
                break


def _last_match_end(pattern: re.Pattern[str], s: str) -> int:
    end = 0
    for m in pattern.finditer(s):
        end = m.end()
    return end


BUILTIN_RECOGNIZERS: dict[str, tuple[tuple[str, ...], Recognizer]] = {
    "email": (("EMAIL",), find_emails),
    "phone": (("PHONE",), find_phones),
    "ssn": (("US_SSN",), find_ssns),
    "card": (("CREDIT_CARD",), find_cards),
    "iban": (("IBAN",), find_ibans),
    "ip": (("IP_ADDRESS",), find_ips),
    "address": (("ADDRESS",), find_addresses),
    "ids": (("MRN", "MEMBER_ID", "POLICY_NUMBER"), find_ids),
}


# -- the detector ------------------------------------------------------------------------------
class CustomPattern(BaseModel):
    """An identifier of the deployment: a regular expression (the ``regex`` module's syntax,
    matched with a time limit), the entity type it reports, a score and optional context
    words (then the score is ``score`` with a context word within 40 characters before the
    match and ``score_without_context`` without)."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(pattern=r"^[A-Z][A-Z0-9_]{1,39}$", description="entity type, e.g. MEMBER_ID")
    regex: str = Field(min_length=1, max_length=500)
    score: float = Field(0.9, ge=0, le=1)
    context: list[str] = Field(default_factory=list, max_length=50)
    score_without_context: float | None = Field(None, ge=0, le=1)
    ignore_case: bool = False
    group: int = Field(0, ge=0, le=9, description="the capture group that is the entity (0: the whole match)")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            regex.compile(v)
        except regex.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        if regex.compile(v).search("") is not None and regex.compile(v).fullmatch("") is not None:
            raise ValueError("the pattern matches the empty string")
        return v


class PiiOptions(DetectorOptions):
    entities: list[str] | None = Field(
        None, description="entity types to report (default: every built-in type and every custom pattern's type)"
    )
    patterns: list[CustomPattern] = Field(default_factory=list, max_length=100)
    person_threshold: float = Field(0.5, ge=0, le=1, description="lowest score for a person name")
    allow: list[str] = Field(default_factory=list, max_length=1000, description="values never reported (exact, case-insensitive)")


@register_detector
class PiiDetector(Detector):
    kind = "pii"
    description = (
        "Personal and health data: e-mails, phones, US SSNs, payment cards (Luhn), IBANs (mod-97), IP addresses, "
        "dates of birth, postal addresses, person names, member IDs, policy numbers, medical record numbers, and "
        "the policy's own patterns"
    )
    Options = PiiOptions
    spans = True
    labels = ENTITY_TYPES

    _PATTERN_TIMEOUT_S = 0.05

    def __init__(self, rule_id: str, options: DetectorOptions, resources: Any) -> None:
        super().__init__(rule_id, options, resources)
        assert isinstance(options, PiiOptions)
        custom_types = [p.type for p in options.patterns]
        self.entities = frozenset(options.entities) if options.entities else frozenset(ENTITY_TYPES) | set(custom_types)
        unknown = sorted(self.entities - set(ENTITY_TYPES) - set(custom_types))
        if unknown:
            raise ValueError(
                f"unknown entity type(s) {', '.join(unknown)}; built in: {', '.join(ENTITY_TYPES)}, or add a pattern of that type"
            )
        self._custom = [
            (p, regex.compile(p.regex, regex.IGNORECASE if p.ignore_case else 0), [c.lower() for c in p.context]) for p in options.patterns
        ]
        self._names = NameRecognizer() if "PERSON" in self.entities else None
        self._allow = {a.lower() for a in options.allow}
        self._last: tuple[str, list[Hit]] | None = None  # one-entry cache (a tuple: replaced atomically)

    @property
    def labels_reported(self) -> frozenset[str]:
        return self.entities

    def detect(self, text: str, ctx: DetectContext) -> list[Finding]:
        return [self.finding(h.label, h.score, h.reason, h.start, h.end) for h in self.hits(text)]

    def hits(self, text: str) -> list[Hit]:
        # the stream filter asks for the same window twice (pending, then detect)
        cached = self._last
        if cached is not None and cached[0] == text:
            return cached[1]
        result = self._hits(text)
        self._last = (text, result)
        return result

    def _hits(self, text: str) -> list[Hit]:
        hits = self._raw_hits(text)
        norm = normalize(text)
        if norm.changed:
            # values written with full-width or zero-width characters, confusable letters,
            # "[at]"/"[dot]" or spaced-out characters: found in the normalised text, reported
            # on the stretch of the original they came from
            for h in self._raw_hits(norm.text):
                s, e = norm.original_span(h.start, h.end)
                if e > s and not any(o.start == s and o.end == e for o in hits):
                    hits.append(Hit(s, e, h.label, h.score, h.reason + " (normalised)"))
            hits = _dedupe(hits)
        return hits

    def _raw_hits(self, text: str) -> list[Hit]:
        lower = text.lower()
        hits: list[Hit] = []
        has_digit = _ANY_DIGIT.search(text) is not None
        for key, (labels, fn) in BUILTIN_RECOGNIZERS.items():
            # every built-in identifier but e-mail has a digit; e-mail has an '@'
            if (key == "email" and "@" not in text) or (key not in ("email", "address") and not has_digit):
                continue
            if key == "address" and not has_digit:
                continue
            if self.entities.intersection(labels):
                hits.extend(h for h in fn(text, lower) if h.label in self.entities)
        hits.extend(self._custom_hits(text, lower))
        persons: list[Hit] = []
        if self._names is not None:
            threshold = self.options.person_threshold  # type: ignore[attr-defined]
            persons = [Hit(n.start, n.end, "PERSON", n.score, n.reason) for n in self._names.find(text) if n.score >= threshold]
            hits.extend(persons)
        if "DATE_OF_BIRTH" in self.entities and has_digit:
            strong_persons = [p for p in _dedupe(hits) if p.label == "PERSON"]
            hits.extend(find_dates_of_birth(text, lower, strong_persons))
        if self._allow:
            hits = [h for h in hits if text[h.start : h.end].lower() not in self._allow]
        return _dedupe(hits)

    def _custom_hits(self, text: str, lower: str) -> Iterable[Hit]:
        for p, rx, context in self._custom:
            if p.type not in self.entities:
                continue
            try:
                matches = list(rx.finditer(text, timeout=self._PATTERN_TIMEOUT_S))
            except TimeoutError:
                continue  # a pathological pattern on this text: skip it rather than stall the request
            for m in matches:
                s, e = m.span(p.group) if p.group <= (rx.groups or 0) else m.span()
                if s < 0 or e <= s:
                    continue
                score = p.score
                if context:
                    near = lower[max(0, s - 40) : s]
                    if not any(c in near for c in context):
                        if p.score_without_context is None:
                            continue
                        score = p.score_without_context
                # custom patterns describe this deployment's identifiers: they win ties
                yield Hit(s, e, p.type, min(1.0, score + 0.001), f"{p.type} pattern of the policy")

    def pending(self, text: str) -> int:
        """Hold back what could still become (part of) an entity:

        - the last token when the text does not end in whitespace (an e-mail address, an ID,
          a number still arriving);
        - a trailing run of number-like tokens (``123-45-`` ... ``6789``, ``+1 646 555``,
          IBAN groups, ``April 27,``) and the capitalised words of a street address or a
          person's name that may still continue;
        - any entity found that ends within that region.
        """
        n = len(text)
        hold = n
        tokens = list(re.finditer(r"\S+", text))[-24:]
        if tokens and tokens[-1].end() == n:
            hold = tokens[-1].start()
        # a trailing run of number-like tokens, each separated by one space, touching the end
        if tokens and n - tokens[-1].end() <= 1:
            i = len(tokens) - 1
            while i >= 0:
                word = tokens[i].group(0)
                if not (_DIGITISH.fullmatch(word) or re.fullmatch(rf"(?i:{_MONTHS})\.?,?", word)):
                    break
                if i < len(tokens) - 1 and tokens[i + 1].start() - tokens[i].end() > 1:
                    break
                hold = min(hold, tokens[i].start())
                i -= 1
        if self._names is not None:
            hold = min(hold, self._names.pending(text))
        # an e-mail address written with [at]/[dot] (or its local part, just before the "[at]")
        # may still be arriving: hold it from its local part
        tail_start = max(0, n - 160)
        m = _OBFUSCATED_EMAIL_TAIL.search(text, tail_start)
        if m is not None:
            hold = min(hold, m.start())
        # a street address may go on with its city, state and ZIP
        if "ADDRESS" in self.entities:
            for am in re.finditer(
                r"(?<![\w\-/.$#])\d{1,6}[A-Za-z]?\s+(?:[A-Z][\w'’.\-]*,?\s+){1,8}(?:[A-Z]{2}\s*)?\d{0,4}$", text[max(0, n - 120) :]
            ):
                hold = min(hold, max(0, n - 120) + am.start())
        for h in self.hits(text):
            if h.end >= hold:
                hold = min(hold, h.start)
        return max(0, hold)
