"""English glosses of common words of German, French, Spanish, Italian, Dutch, Portuguese and
Chinese, for the English-centred sentence embedder (all-MiniLM-L6-v2).

MiniLM places "Wird meine Brille bezahlt?" and "Welche Aktien soll ich kaufen?" close to each
other and far from every English example, so the topic detector cannot tell an insurance
question from a stock tip in those languages. :func:`gloss` rewrites the words it knows into
English ("Brille" -> "glasses", "Aktien" -> "stocks", "保险" -> "insurance") and leaves the rest,
and the topic detector embeds the glossed text beside the original. The vocabulary is the
subjects an insurer's assistant must tell apart: coverage, claims, bills, care, pharmacy, the
account — and the usual off-topic ones (cooking, sport, money, weather, code, travel, writing).
"""

from __future__ import annotations

import re

_GLOSSES: dict[str, tuple[str, ...]] = {
    # insurance, coverage, money the plan pays
    "insurance": (
        "versicherung",
        "krankenversicherung",
        "krankenkasse",
        "assurance",
        "mutuelle",
        "seguro",
        "assicurazione",
        "verzekering",
        "zorgverzekering",
        "保险",
        "医保",
    ),
    "insurance plan": ("tarif", "versicherungstarif", "formule", "póliza", "poliza", "polizza", "polis", "plano", "plan de salud"),
    "covered": (
        "übernommen",
        "bezahlt",
        "erstattet",
        "abgedeckt",
        "remboursé",
        "remboursée",
        "couvert",
        "couverte",
        "pris en charge",
        "cubre",
        "cubierto",
        "cubierta",
        "copre",
        "coperto",
        "coperta",
        "rimborsato",
        "vergoed",
        "gedekt",
        "cobre",
        "coberto",
        "reembolsado",
        "报销",
        "覆盖",
        "承保",
    ),
    "reimbursement claim": (
        "erstattung",
        "rückerstattung",
        "remboursement",
        "reembolso",
        "rimborso",
        "declaratie",
        "terugbetaling",
        "reclamación",
        "reclamo",
        "sinistro",
        "理赔",
        "索赔",
    ),
    "bill invoice": ("rechnung", "facture", "factura", "fattura", "rekening", "nota", "fatura", "账单", "发票"),
    "cost price": ("kostet", "kosten", "coûte", "coût", "cuesta", "costo", "costa", "kost", "custa", "custo", "费用", "多少钱"),
    "deductible copay": (
        "selbstbeteiligung",
        "zuzahlung",
        "franchise",
        "ticket modérateur",
        "deducible",
        "copago",
        "franchigia",
        "eigen risico",
        "franquia",
        "coparticipação",
        "免赔额",
        "自付",
    ),
    "member card": (
        "versichertenkarte",
        "mitgliedskarte",
        "carte vitale",
        "carte d'adhérent",
        "tarjeta de miembro",
        "tarjeta sanitaria",
        "tessera sanitaria",
        "zorgpas",
        "cartão",
        "cartao",
        "会员卡",
        "保险卡",
    ),
    "appeal denial": (
        "widerspruch",
        "abgelehnt",
        "contester",
        "refus",
        "refusé",
        "recurso",
        "rechazado",
        "ricorso",
        "rifiutato",
        "bezwaar",
        "afgewezen",
        "recurso",
        "negado",
        "申诉",
        "拒绝",
    ),
    # care
    "doctor": ("arzt", "ärztin", "hausarzt", "médecin", "medico", "médico", "dokter", "huisarts", "医生", "大夫"),
    "specialist": ("facharzt", "spécialiste", "especialista", "specialista", "specialist", "专科"),
    "hospital": ("krankenhaus", "klinik", "hôpital", "hospital", "ospedale", "ziekenhuis", "医院", "住院"),
    "dentist dental": (
        "zahnarzt",
        "zahnärztin",
        "zahnreinigung",
        "zahnersatz",
        "dentiste",
        "dentaire",
        "dentista",
        "dental",
        "tandarts",
        "牙科",
        "牙医",
        "洗牙",
    ),
    "glasses eye": ("brille", "lunettes", "gafas", "occhiali", "bril", "óculos", "oculos", "眼镜"),
    "physical therapy": ("physiotherapie", "krankengymnastik", "kiné", "kinésithérapie", "fisioterapia", "fysiotherapie", "理疗"),
    "therapy mental health": (
        "psychotherapie",
        "psychologe",
        "psychologue",
        "psicólogo",
        "psicologo",
        "psicoterapia",
        "psycholoog",
        "心理咨询",
        "心理",
    ),
    "vaccine": ("impfung", "vaccin", "vacuna", "vaccino", "vacina", "疫苗"),
    "pharmacy prescription medicine": (
        "apotheke",
        "rezeptpflichtig",
        "medikament",
        "medikamente",
        "pharmacie",
        "ordonnance",
        "médicament",
        "farmacia",
        "receta médica",
        "medicamento",
        "farmaco",
        "ricetta medica",
        "apotheek",
        "medicijn",
        "farmácia",
        "remédio",
        "药",
        "药房",
        "处方",
    ),
    "pregnancy birth": (
        "schwangerschaft",
        "geburt",
        "grossesse",
        "accouchement",
        "embarazo",
        "parto",
        "gravidanza",
        "zwangerschap",
        "gravidez",
        "怀孕",
        "分娩",
    ),
    "emergency": (
        "notfall",
        "notaufnahme",
        "urgence",
        "urgences",
        "urgencia",
        "emergencia",
        "pronto soccorso",
        "spoedeisende hulp",
        "emergência",
        "急诊",
    ),
    "checkup examination": (
        "untersuchung",
        "vorsorge",
        "bilan de santé",
        "examen",
        "chequeo",
        "controllo",
        "onderzoek",
        "exame",
        "check-up",
        "体检",
        "检查",
    ),
    "in network provider": (
        "vertragsarzt",
        "conventionné",
        "red de proveedores",
        "dentro de la red",
        "convenzionato",
        "gecontracteerd",
        "credenciado",
        "网络内",
        "定点",
    ),
    # off topic
    "recipe cooking": (
        "rezept für",
        "kochen",
        "backen",
        "recette",
        "cuisiner",
        "receta de",
        "cocinar",
        "ricetta",
        "cucinare",
        "recept",
        "koken",
        "receita",
        "cozinhar",
        "菜谱",
        "做饭",
        "食谱",
    ),
    "football match sport": (
        "fußball",
        "fussball",
        "spiel",
        "match",
        "partido",
        "partita",
        "wedstrijd",
        "jogo",
        "futebol",
        "calcio",
        "scudetto",
        "足球",
        "比赛",
    ),
    "stocks investment": (
        "aktien",
        "aktie",
        "börse",
        "actions",
        "bourse",
        "acciones",
        "bolsa",
        "azioni",
        "aandelen",
        "ações",
        "acoes",
        "股票",
        "投资",
    ),
    "weather": ("wetter", "météo", "temps", "tiempo", "clima", "meteo", "weer", "previsão", "天气"),
    "poem story joke": (
        "gedicht",
        "witz",
        "poème",
        "blague",
        "poema",
        "chiste",
        "poesia",
        "barzelletta",
        "gedicht",
        "mop",
        "piada",
        "诗",
        "笑话",
        "故事",
    ),
    "website programming": (
        "programmieren",
        "webseite",
        "site web",
        "programmer",
        "programar",
        "página web",
        "programmare",
        "sito web",
        "website",
        "programmeren",
        "programação",
        "编程",
        "网站",
        "代码",
    ),
    "travel holiday": (
        "urlaub",
        "reise",
        "vacances",
        "voyage",
        "vacaciones",
        "viaje",
        "vacanze",
        "viaggio",
        "vakantie",
        "reis",
        "férias",
        "viagem",
        "旅游",
        "旅行",
    ),
    "phone car buy": (
        "handy kaufen",
        "auto kaufen",
        "acheter",
        "téléphone portable",
        "comprar",
        "celular",
        "móvil",
        "comprare",
        "telefonino",
        "kopen",
        "carro",
        "买手机",
        "买车",
    ),
    "capital city country": ("hauptstadt", "capitale", "capital", "hoofdstad", "首都"),
}
_CJK = re.compile(r"[\u3400-\u9fff]")
_INDEX: dict[str, str] = {w: en for en, words in _GLOSSES.items() for w in words}
_PHRASES = sorted((w for w in _INDEX if " " in w or "'" in w or "-" in w), key=len, reverse=True)
_CJK_WORDS = sorted((w for w in _INDEX if _CJK.search(w)), key=len, reverse=True)
_WORD = re.compile(r"[^\W\d_]+")
_PREFIXES = sorted((w for w in _INDEX if len(w) >= 5 and w.isalpha() and not _CJK.search(w)), key=len, reverse=True)


def gloss(text: str) -> str:
    """``text`` with the words this module knows replaced by English ones ("" when none is known)."""
    lower = text.lower()
    found: list[tuple[int, int, str]] = []
    for w in _PHRASES:
        for m in re.finditer(r"(?<!\w)" + re.escape(w) + r"(?!\w)", lower):
            found.append((m.start(), m.end(), _INDEX[w]))
    if _CJK.search(lower):
        for w in _CJK_WORDS:
            start = lower.find(w)
            while start >= 0:
                found.append((start, start + len(w), _INDEX[w]))
                start = lower.find(w, start + len(w))
    for m in _WORD.finditer(lower):
        word = m.group(0)
        en = _INDEX.get(word)
        if en is None and len(word) >= 8:
            # compounds: "Zahnarztleistungen" starts with "zahnarzt"
            prefix = next((w for w in _PREFIXES if word.startswith(w)), None)
            en = _INDEX[prefix] if prefix else None
        if en is not None:
            found.append((m.start(), m.end(), en))
    if not found:
        return ""
    chosen: list[tuple[int, int, str]] = []
    for s, e, en in sorted(found, key=lambda t: (-(t[1] - t[0]), t[0])):
        if all(e <= a or s >= b for a, b, _ in chosen):
            chosen.append((s, e, en))
    out, pos = [], 0
    for s, e, en in sorted(chosen):
        out.append(text[pos:s])
        out.append(f" {en} ")
        pos = e
    out.append(text[pos:])
    return re.sub(r"\s+", " ", "".join(out)).strip()
