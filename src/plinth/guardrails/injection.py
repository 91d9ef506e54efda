"""Prompt injection and system-prompt extraction, also inside pasted documents and retrieved
passages, in other languages and behind encodings; offline, no model download.

The text is checked as written and as decoded: base64, hex and ROT13 payloads are decoded
and leetspeak, spaced letters, homoglyphs and zero-width characters folded
(:func:`plinth.guardrails.text.fold`). Rule features name the moves an injection makes —
overriding instructions, a new persona without rules, asking for the hidden prompt,
planting an instruction in a document (``[SYSTEM: ...]``, ``note to the AI``), claiming
authority to reach other members' data — in English, Spanish, German, French, Italian,
Portuguese, Chinese, Japanese, Korean and Russian; a linear classifier trained on plinth's
own examples weighs them with n-grams. Words such as "ignore", "system" or "act as" on their
own are not enough.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterable

from pydantic import Field

from plinth.domain.guardrails import Direction, Finding
from plinth.guardrails.base import DetectContext, DetectorOptions, register_detector
from plinth.guardrails.text import Gated, fold, word_set
from plinth.guardrails.toxicity import LinearTextDetector

_VERB_IGNORE = (
    r"ignore|ignoring|disregard|forget|skip|bypass|override|overrule|drop|abandon|discard|neglect|dismiss|set aside|"
    r"put aside|throw out|erase|delete|clear|reset|stop following|don'?t follow|do not follow|no longer follow|cancel|void|"
    r"suspend|disable|turn off|deactivate|unlearn"
)
_OBJ = (
    r"instructions?|instruction set|rules?|guidelines?|prompts?|directives?|policies|policy|programming|training|"
    r"restrictions?|constraints?|filters?|guardrails?|safeguards?|safety|context|messages?|commands?|orders|"
    r"settings|configuration|system message|system prompt|limitations|boundaries|ethics|principles|protocols?|"
    r"content policy|moderation|alignment|conditioning|persona|role|above|what you were told|what you've been told|"
    r"everything (?:above|before|else|you were told|you know)|all (?:of )?(?:the )?above"
)
_QUAL = (
    r"(?:all|any|the|your|of|these|those|every|previous|prior|above|earlier|preceding|initial|original|old|"
    r"existing|current|system|safety|default|standard|hidden|internal|developer|acme|its|their|and|or|other)"
)

_PATTERNS = {
    "override": rf"\b(?:{_VERB_IGNORE})\b\s+(?:{_QUAL}\s+){{0,4}}(?:{_OBJ})\b",
    "override_loose": rf"\b(?:{_VERB_IGNORE})\b[^.!?\n]{{0,40}}\b(?:instructions?|rules|prompt|guidelines|programming|"
    rf"restrictions|filters)\b",
    "new_rules": r"\b(?:new|updated|real|actual|true|revised|override|priority|secret|hidden|additional|"
    r"special)\s+(?:instructions?|rules|orders|directives?|task|mission|objective|role|persona)\s*[:\-]"
    r"|\bfrom now on\b[^.!?\n]{0,60}\b(?:respond|answer|reply|say|act|behave|only|always|never|you)\b|"
    r"\bno matter what\b|\bto everything i say\b"
    r"|\brespond (?:only )?(?:with|as)\b[^.!?\n]{0,30}\b(?:to everything|no matter|from now on|every (?:question|message))",
    "persona": r"\b(?:you are now|you're now|you are no longer|you're no longer|from now on,? you(?: are|'re| will| must| shall)|"
    r"from now on,? (?:act|behave|respond|answer|speak|reply)|pretend (?:to be|you(?:'re| are)|that you)|"
    r"act as (?:if you were |though you were )?(?:an? )?(?:\w+ ){0,3}?"
    r"(?:ai|assistant|bot|model|chatbot|character|hacker|person|version|entity|system|dan|developer|admin|god)|"
    r"roleplay as|role-play as|play the role of|you will (?:now )?(?:act|play|be|become)|"
    r"become (?:an? )?(?:unfiltered|unrestricted|evil|jailbroken)|"
    r"act as (?:the|a|an|my) (?:\w+ ){0,3}?(?:database|terminal|shell|server|system|administrator|admin|"
    r"developer|root|api|backend|console|interpreter)|"
    r"act[uú]a como (?:el |un |una )?(?:administrador|desarrollador|sistema|base de datos)|you are (?:a|an|"
    r"the) (?:linux |unix |bash )?(?:terminal|shell|console|database)|"
    r"respond (?:only )?as|you must now (?:respond|act|answer|be)|"
    r"switch (?:to|into) (?:\w+ )?mode|enter (?:\w+ )?mode|enable (?:\w+ )?mode|activate (?:\w+ )?mode|stay in character|"
    r"forget (?:that )?you(?:'re| are) (?:an?|the)|you(?:'re| are) not (?:an?|the) (?:\w+ )?(?:assistant|"
    r"bot|ai)|answer (?:twice|two ways|as both))\b",
    "no_rules": r"\b(?:no|without|free of|free from|zero|ignoring|devoid of|unbound by|not bound by|"
    r"beyond)\s+(?:any\s+)?(?:rules|restrictions|limits|limitations|filters|guidelines|"
    r"censorship|boundaries|constraints|policies|ethics|morals|safeguards|guardrails|content policy)\b|"
    r"\b(?:unfiltered|uncensored|unrestricted|unlimited|"
    r"jailbroken|jailbreak|jail-?break|dan mode|developer mode|dev mode|god mode|evil mode|opposite mode|"
    r"sudo mode|debug mode|maintenance mode|admin mode|"
    r"do anything now|dan)\b|\b(?:no|without (?:a|your|any)|had no|have no) (?:system prompt|instructions|programming)\b",
    "extract": r"\b(?:reveal|show|print|output|display|repeat|recite|tell me|give me|share|leak|dump|list|copy|paste|write out|spell out|"
    r"type out|provide|send|disclose|expose|read (?:me|out|back)|echo|translate|summari[sz]e|what (?:are|"
    r"were|is)|what's|whats|state|complete)\b[^.!?\n]{0,30}?"
    r"\b(?:your|the|ur|this|its|all|my|any|hidden|secret|internal)\b[^.!?\n]{0,20}?\b(?:system prompt|"
    r"system message|initial prompt|original prompt|"
    r"hidden (?:prompt|instructions|rules|text|message)|instructions|rules|guidelines|prompt|configuration|config|directives|"
    r"developer (?:message|prompt|instructions)|pre-?prompt|meta-?prompt|guardrails|policies you follow|"
    r"secret (?:instructions|rules|key|prompt)|"
    r"internal (?:rules|instructions|notes|policies|guidelines|documents|quotas|criteria)|training data|"
    r"context window|everything above|text above|first message)\b"
    r"|\b(?:system prompt|initial prompt|hidden prompt|original instructions|"
    r"secret instructions)\b[^.!?\n]{0,40}\b(?:begins|starts|says|reads|contains|exactly|verbatim|"
    r"as written)\b"
    r"|\b(?:exactly|verbatim) as written\b|\bcomplete this sentence\b[^\n]{0,60}\b(?:prompt|instructions|rules)\b",
    "above": r"\b(?:everything|all|the text|the words|whatever|what(?:'s| is| was)|anything)\s+(?:written\s+|said\s+|"
    r"stated\s+)?(?:above|before this|prior to this|"
    r"at the (?:top|start|beginning))\b|\b(?:the )?(?:words|text|lines|sentences|messages?|"
    r"paragraphs?) (?:above|before this)\b|\b(?:verbatim|word for word|word-for-word|character by character|"
    r"in full|in a code block)\b",
    "tags": r"(?:<\s*/?\s*(?:system|sys|instructions?|rules|admin|prompt|im_start|im_end|assistant|user)\s*>|<\|"
    r"[a-z_]+\|>|\[/?(?:system|sys|inst|admin|instructions?)\b|"
    r"<!--[^>]{0,200}\b(?:ai|assistant|model|ignore|instruction|system)\b|\[\s*(?:assistant|ai|system|admin|"
    r"model|bot)\s+(?:instruction|note|command|directive|override)s?\s*:|"
    r"\b(?:supervisor|manager|admin|administrator|system|developer|security|emergency)\s+override\s*[:\-]|"
    r"###\s*(?:system|instruction|new instructions?|admin)|\b(?:system|admin|developer|root|"
    r"operator)\s*(?:override|message|note|command|instruction|prompt)?\s*:\s|"
    r"\bbegin (?:system|admin|new) (?:prompt|instructions?)\b|\bend of (?:system )?prompt\b)",
    "planted": r"\b(?:note to (?:the )?(?:ai|assistant|model|bot|chatbot|llm)s?(?: models?)?|to (?:any|all|the) (?:ai|"
    r"assistant|llm|language model|chatbot|bot)s?\b|"
    r"(?:any|the) (?:ai|assistant|llm|model|bot)s? (?:summari[sz]ing|reading|processing|parsing|"
    r"seeing) (?:this|these)|(?:ai|assistant|model|bot|chatbot|llm)s?,? (?:reading|processing|that reads|"
    r"who reads) this|"
    r"if you(?:'re| are) an? (?:ai|language model|assistant|llm|bot)|when (?:you|the ai|the assistant|"
    r"the model|the bot) (?:read|see|process|summari[sz]e)s? this|"
    r"hidden (?:instruction|message|text)|instruction(?:s)? for the (?:ai|assistant|model|bot)|dear (?:ai|assistant|chatbot|bot)|"
    r"attention (?:ai|assistant|llm|model)|the assistant (?:must|should|will) (?:now|always|ignore|reveal|"
    r"approve|append|include|say|output|respond)|"
    r"(?:append|add|include|insert) (?:the following|this|your|the full|the text of|"
    r"a link)\b[^.!?\n]{0,40}\b(?:to|in|at the end of) (?:your|every|each|all) (?:answers?|responses?|"
    r"replies|output|messages?))\b",
    "authority": r"\b(?:i am|i'm|im|this is|speaking as|as)\s+(?:an?|the|your|acme'?s?)?\s*(?:\w+\s+){0,2}?(?:admin|"
    r"administrator|developer|dev|engineer|programmer|creator|owner|"
    r"supervisor|manager|ceo|cto|auditor|investigator|officer|it (?:department|team|staff|support|security)|"
    r"security team|compliance (?:team|officer)|"
    r"system operator|sysadmin|root|moderator|openai|anthropic|your maker|law enforcement|police|fbi|"
    r"government agent|staff member|employee|"
    r"claims (?:director|manager|supervisor))\b",
    "authorized": r"\b(?:the user (?:has|is) (?:an? )?(?:admin|administrator|root|elevated|verified|authori[sz]ed)|"
    r"(?:privileges?|identity|clearance) (?:\()?verified|i(?:'m| am) authori[sz]ed|i have (?:clearance|"
    r"authori[sz]ation|admin (?:rights|access|privileges))|with (?:my )?(?:admin|root|elevated) (?:rights|"
    r"access|privileges)|"
    r"(?:authori[sz]ation|override|admin|access|security|auth) (?:code|key|token|password|"
    r"pin)\s*[:#]?\s*\w+|for (?:an? )?(?:audit|compliance check|security test|penetration test|pentest|"
    r"investigation|debugging|testing purposes))\b",
    "other_data": r"\b(?:other|another|all|every|others'|other people'?s?|someone else'?s?|the last \d+|previous|all the|"
    r"each|any)\s+(?:\w+\s+){0,2}?(?:members?'?s?|users?'?s?|customers?'?s?|patients?'?s?|"
    r"policyholders?'?s?|subscribers?'?s?|accounts?|clients?'?s?|people'?s?|"
    r"persons?'?s?)\s*(?:\w+\s+){0,3}?(?:data|records?|ids?|ssns?|social security|information|info|details|"
    r"claims|accounts?|addresses|phone numbers|emails?|files?|history|histories|diagnos[ie]s|prescriptions|passwords?|names|contact)\b"
    r"|\b(?:someone else'?s|another (?:member|person|user|customer)'?s?|my (?:neighbou?r|ex|boss|coworker|"
    r"co-worker)'?s)\s+(?:\w+\s+){0,2}?(?:account|claims|records|data|information|diagnosis|prescriptions|"
    r"history)\b"
    r"|\b(?:get|break|hack|log|sneak)\s+(?:into|in to)\s+(?:someone|somebody|another|other|an?other)\b"
    r"|\b(?:list|names?|all|every|each)\s+(?:of\s+)?(?:the\s+)?(?:members|patients|policyholders|"
    r"subscribers|customers|users|afiliados|miembros|pacientes|mitglieder|会员|用户)\b[^.!?\n]{0,40}\b(?:who|in|"
    r"with|that|from|on|de|con|en)\b"
    r"|\b(?:look up|pull up|find|search for|check|open)\s+(?:member|patient|policyholder|the account of|"
    r"the file of|the claims of)\s+[A-Z]?\w+[^.!?\n]{0,60}\b(?:diagnos\w+|claims|records|prescriptions|"
    r"history|address|ssn|phone|medications)\b"
    r"|\b(?:every|all|each) (?:policy|account|claim|member) (?:in|of|on) (?:the|their|his|her|"
    r"this) (?:\w+ )?(?:household|family|group|company|zip)\b"
    r"|\b(?:i'?m|i am) (?:his|her|their) (?:coworker|co-worker|colleague|neighbou?r|boss|friend|ex)\b",
    "privileged": r"\b(?:approve (?:my|this|the) (?:claim|request|appeal)(?: now| immediately| without)|override (?:the |"
    r"this |my )?(?:denial|decision|limit|cap|system)|"
    r"grant (?:me )?(?:admin|root|full|elevated|unrestricted) (?:access|rights|privileges)|disable (?:the |"
    r"your |all )?(?:filters?|safety|guardrails|logging|moderation|checks)|"
    r"turn off (?:the |your )?(?:filters?|safety|guardrails|logging|moderation)|export (?:the |your |"
    r"all )?(?:database|db|records|tables|member list)|"
    r"(?:delete|drop|wipe) (?:the |all )?(?:database|db|tables|records|logs)|run (?:this |"
    r"the following )?(?:command|code|sql|script|query)|"
    r"execute (?:this|the following|code|command|sql)|mark (?:my |this )?claim as (?:paid|approved)|set my (?:deductible|balance|copay) to|"
    r"change (?:my|the) (?:balance|deductible|limit) to|refund (?:me )?\$?\d+ (?:now|immediately)|"
    r"waive (?:all|my) (?:fees|copays?|deductible) (?:now|immediately))\b",
    "tool_use": r"\b(?:call|invoke|use|trigger|run|execute)\s+(?:the\s+)?[\w\-]+\s+(?:tool|function|api|endpoint|"
    r"plugin)\b|\bfunction[_ ]call\b|\btool[_ ]call\b"
    r"|\bselect \* from\b|\bdrop table\b|\bcat /etc/|\brm -rf\b|\b(?:curl|wget) https?://|"
    r"\bno need to verify\b|\bwithout (?:any )?(?:verification|checks|review|approval)\b",
    "decode_follow": r"\b(?:decode|decrypt|translate|unscramble|reverse|convert|interpret|read)\b[^.!?\n]{0,40}\b(?:and|"
    r"then)\s+(?:follow|execute|do|obey|run|act on|carry out|comply|perform|answer)\b"
    r"|\b(?:base64|b64|rot13|rot-13|hex(?:adecimal)?|binary|morse|caesar|cipher|encoded|reversed text|backwards)\b",
    "hypothetical": r"\b(?:hypothetically|in a (?:fictional|hypothetical) (?:world|story|scenario)|for a (?:story|novel|"
    r"screenplay|game)|imagine (?:you are|you're|an ai|a world)|"
    r"let'?s play a game|simulate (?:an? )?(?:ai|assistant|model|terminal|linux|unrestricted))\b",
    "priority": r"\b(?:stop\.\s+new (?:task|instructions?)|this (?:instruction|message|command) (?:overrides|supersedes|"
    r"takes priority|has priority)|highest priority|top priority instruction|"
    r"must (?:obey|comply|follow) (?:this|me|these)|you must (?:now )?(?:obey|comply)|do not (?:tell|inform|"
    r"warn|mention (?:this )?to) the user|without telling the user|"
    r"don'?t tell the user|keep this (?:secret|hidden) from the user|the user must not know)\b",
    "foreign": r"(?:ignora(?:r)?|olvida(?:r)?|omite|descarta)\s+(?:todas?\s+)?(?:las?\s+|tus\s+|"
    r"sus\s+)?(?:instrucciones|reglas|indicaciones|directrices)"
    r"|(?:instrucciones|reglas) (?:anteriores|previas)|revela(?:me)? (?:tu|el|las|sus) (?:prompt|"
    r"instrucciones|reglas|mensaje del sistema)|ahora eres|act[uú]a como (?:un|una)|sin (?:reglas|"
    r"restricciones|filtros|límites)"
    r"|ignorier(?:e|en sie)?\s+(?:alle\s+)?(?:vorherigen\s+|bisherigen\s+|obigen\s+)?(?:anweisungen|regeln|"
    r"instruktionen|vorgaben)|vergiss\s+(?:alle\s+|deine\s+)?(?:anweisungen|regeln)"
    r"|(?:zeig|nenn|verrate|gib)(?:e)?\s+(?:mir\s+)?(?:deinen?|die)\s+(?:system-?prompt|systemnachricht|"
    r"anweisungen|regeln)|du bist (?:jetzt|nun|ab sofort)|ohne (?:regeln|einschränkungen|filter)"
    r"|ignor(?:e|ez)\s+(?:toutes?\s+)?(?:les\s+|tes\s+|vos\s+)?(?:instructions|règles|consignes)|"
    r"oublie(?:z)?\s+(?:toutes?\s+)?(?:tes|vos|les)\s+(?:instructions|règles|consignes)"
    r"|(?:révèle|montre|affiche|donne)(?:-moi)?\s+(?:ton|votre|le|tes|vos|les)\s+(?:prompt|instructions|"
    r"règles|message système)|tu es maintenant|sans (?:règles|restrictions|filtres)"
    r"|ignora\s+(?:tutte\s+)?(?:le\s+)?(?:istruzioni|regole)|dimentica (?:le|tutte le|le tue) (?:istruzioni|regole)|"
    r"(?:rivela|mostra|dimmi)(?:mi)?\s+(?:il tuo |il |le tue |le )(?:prompt|istruzioni|regole)|prompt di sistema|"
    r"(?:da ora in poi|d'ora in poi|adesso|ora) sei|senza (?:regole|limiti|restrizioni|filtri)|"
    r"negeer\s+(?:alle\s+)?(?:vorige\s+|eerdere\s+)?(?:instructies|regels)|vergeet\s+(?:alle\s+|je\s+)?(?:instructies|regels)|"
    r"systeemprompt|systeem-?instructies|(?:vanaf nu|voortaan|nu) ben je|zonder (?:regels|beperkingen|filters)|"
    r"(?:a partir de agora|agora) (?:você é|voce e|és)|sem (?:regras|restrições|restricoes|limites|filtros)|"
    r"prompt do sistema|mostre (?:o|as) (?:prompt|instruções)|ignore (?:as|todas as) (?:regras|instruções)|"
    r"(?:a partir de ahora|desde ahora|ahora) eres|olvida tus (?:instrucciones|reglas)|mensaje del sistema|"
    r"(?:ab jetzt|von nun an|ab sofort) bist du|systemprompt|"
    r"(?:désormais|dorénavant|à partir de maintenant) tu es|prompt système|"
    r"ignore\s+(?:todas\s+)?as\s+instruções|esqueça (?:as|todas as) instruções|você agora é"
    r"|忽略|无视|忘记(?:你的|之前的|所有)|不要遵守|系统提示|提示词|你现在是|扮演|没有(?:任何)?限制|不受限制|越狱|开发者模式"
    r"|以前の指示|指示を無視|システムプロンプト|制限なし|脱獄"
    r"|이전 지시|지시를 무시|시스템 프롬프트|제한 없이|탈옥"
    r"|игнорируй|забудь (?:все )?(?:инструкции|правила)|системн\w+ (?:промпт|подсказк\w+|инструкци\w+)|"
    r"ты теперь|без (?:ограничений|правил|фильтров)",
}
_IGNORE_WORDS = (
    "ignore ignoring disregard forget skip bypass override overrule drop abandon discard neglect dismiss set put throw "
    "erase delete clear reset stop don do no cancel void suspend disable turn deactivate unlearn"
)
#: words one of which every alternative of the pattern starts with (see plinth.guardrails.text.Gated)
_TRIGGERS: dict[str, dict[str, object]] = {
    "override": {"triggers": _IGNORE_WORDS},
    "override_loose": {"triggers": _IGNORE_WORDS},
    "new_rules": {"triggers": "new updated real actual true revised override priority secret hidden additional special from no to respond"},
    "persona": {
        "triggers": "you from pretend act roleplay role play become switch enter enable activate stay forget answer respond actúa actua"
    },
    "no_rules": {
        "triggers": "no without free zero ignoring devoid unbound not beyond unfiltered uncensored unrestricted unlimited "
        "jailbroken jailbreak jail dan developer dev god evil opposite sudo debug maintenance admin do had have"
    },
    "extract": {
        "triggers": "reveal show print output display repeat recite tell give share leak dump list copy paste write spell type "
        "provide send disclose expose read echo translate summarize summarise what whats s state complete system initial "
        "hidden original secret exactly verbatim"
    },
    "above": {
        "triggers": "everything all the whatever what anything words text lines sentences message messages paragraph "
        "paragraphs verbatim word character in"
    },
    "tags": {"chars": "<[#:"},
    "planted": {
        "triggers": "note to any all the if when hidden instruction instructions dear attention ai assistant model bot "
        "chatbot llm append add include insert"
    },
    "authority": {"triggers": "i im this speaking as"},
    "authorized": {
        "triggers": "the i with authorization authorisation override admin access security auth for privileges privilege identity clearance"
    },
    "other_data": {
        "triggers": "other another all every others someone the each any previous get break hack log sneak list names "
        "name look pull find search check open i im"
    },
    "privileged": {"triggers": "approve override grant disable turn export delete drop wipe run execute mark set change refund waive"},
    "tool_use": {"triggers": "call invoke use trigger run execute function tool select drop cat rm curl wget no without"},
    "decode_follow": {
        "triggers": "decode decrypt translate unscramble reverse convert interpret read base b64 rot rot13 hex hexadecimal binary "
        "morse caesar cipher encoded reversed backwards"
    },
    "hypothetical": {"triggers": "hypothetically in for imagine let lets simulate"},
    "priority": {"triggers": "stop this highest top must you do without don keep the"},
    "foreign": {
        "triggers": "ignora ignorar olvida olvidar omite descarta instrucciones reglas revela revelame ahora actúa actua sin "
        "ignoriere ignorieren vergiss zeig zeige nenn nenne verrate gib du ohne ignore ignorez oublie oubliez révèle revele "
        "montre affiche donne tu sans dimentica esqueça esqueca você voce rivela mostra dimmi prompt da d ora adesso "
        "senza negeer vergeet systeemprompt systeem vanaf voortaan nu zonder a agora sem mostre desde mensaje ab von "
        "systemprompt désormais dorénavant à",
        "scripts": True,
    },
}
_RX = {name: Gated(p, flags=re.IGNORECASE, **_TRIGGERS[name]) for name, p in _PATTERNS.items()}  # type: ignore[arg-type]
_BENIGN_INSTRUCTIONS = re.compile(
    r"\b(?:prep|preparation|discharge|dosing|dosage|medication|care|aftercare|post-?op|wound|pharmacy|doctor'?s|surgeon'?s|"
    r"mail-?in|enrollment|filing|appeal|claim form|billing|portal|login|app|setup|installation|assembly|"
    r"cleaning|diet|fasting)\s+instructions?\b"
    r"|\binstructions?\s+(?:for|on|about|from) (?:the |my |a |how )?(?:prep|colonoscopy|surgery|procedure|"
    r"medication|filing|appeal|claim|portal|app|form|test|scan|mri|pharmacy)"
)
_B64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[\s:]?){12,}\b")
_ROT13_HINT = re.compile(r"\brot-?13\b", re.IGNORECASE)


def decoded_variants(text: str) -> list[str]:
    """Payloads hidden in the text, decoded: base64, hex, ROT13 (when the text says so),
    and the text reversed when it says it is backwards."""
    out: list[str] = []
    for m in _B64.finditer(text):
        chunk = m.group(0)
        if chunk.isalpha() and (chunk.islower() or chunk.isupper()):
            continue  # a long plain word
        try:
            raw = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=False)
            s = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if sum(c.isprintable() for c in s) >= 0.9 * len(s) and re.search(r"[a-zA-Z]{3,}\s+[a-zA-Z]{2,}", s):
            out.append(s)
    for m in _HEX.finditer(text):
        try:
            s = bytes.fromhex(re.sub(r"[\s:]", "", m.group(0))).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if re.search(r"[a-zA-Z]{3,}\s+[a-zA-Z]{2,}", s):
            out.append(s)
    if _ROT13_HINT.search(text):
        out.append(codecs.decode(text, "rot13"))
    if re.search(r"\b(?:backwards|reversed|in reverse)\b", text, re.IGNORECASE):
        out.append(text[::-1])
    return out


def rule_features(text: str, folded: str) -> Iterable[str]:
    feats: set[str] = set()
    words = word_set(folded)
    for name, rx in _RX.items():
        if rx.search(folded, words):
            feats.add(name)
    # markers that folding would damage (``<|im_start|>``: '|' reads as a leetspeak 'i')
    if "tags" not in feats and _RX["tags"].search(text.lower(), words):
        feats.add("tags")
    decoded = decoded_variants(text)
    if decoded:
        feats.add("encoded_payload")
        for d in decoded:
            fd = fold(d)
            dwords = word_set(fd)
            for name, rx in _RX.items():
                if rx.search(fd, dwords):
                    feats.add(f"{name}_decoded")
                    feats.add("decoded_instruction")
    if "authority" in feats and ("other_data" in feats or "privileged" in feats or "extract" in feats):
        feats.add("authority+request")
    if ("override" in feats or "override_loose" in feats) and ("persona" in feats or "extract" in feats or "no_rules" in feats):
        feats.add("override+payload")
    if "tags" in feats or "planted" in feats:
        feats.add("embedded_instruction")
    if _BENIGN_INSTRUCTIONS.search(folded):
        feats.add("benign_instructions")
    return feats


class InjectionOptions(DetectorOptions):
    model: str = Field("injection.json", description="weights file shipped in plinth.guardrails/data")
    max_chars: int = Field(4000, ge=100, le=100_000, description="longer texts are checked in pieces of this size")
    semantic: bool = Field(
        True, description="also judge by meaning (a head on the MiniLM sentence embedding), when the embedder is available"
    )
    semantic_gate: float = Field(
        0.4,
        ge=0,
        le=1,
        description="the semantic head runs only when the linear model's score is at least this (it costs an embedding); "
        "0.4 keeps the development sets' results and embeds a quarter as many benign messages as 0.25 (ADR 0125); "
        "a policy that embeds every message anyway (a topic rule) loses nothing by a lower gate",
    )
    prototypes: bool = Field(
        True, description="with the semantic head, also let the nearest training texts vote, where the model ships them (ADR 0125)"
    )


@register_detector
class InjectionDetector(LinearTextDetector):
    kind = "injection"
    description = (
        "Prompt injection and system-prompt extraction, also planted in pasted documents and retrieved passages, "
        "encoded (base64, hex, ROT13), obfuscated or in other languages"
    )
    Options = InjectionOptions
    labels = ("injection",)
    directions = frozenset({Direction.INPUT, Direction.RETRIEVED, Direction.OUTPUT})
    positive = "injection"
    noun = "prompt injection"

    def rules(self, text: str, folded: str) -> Iterable[str]:
        return rule_features(text, folded)

    def detect(self, text: str, ctx: DetectContext) -> list[Finding]:
        return super().detect(text, ctx)
