"""Writes the Acme Health corpus from facts.py: policy documents (Markdown, one HTML page and
one PDF), the retrieval question set, and FAQ pairs for fine-tuning and evaluation.

    python examples/acme-health/build_corpus.py      # rewrites the files next to this script

Everything is synthetic: Acme Health, its plans, numbers, phone numbers and addresses are
made up (555 numbers are reserved for fiction).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import facts as F  # noqa: E402

P = F.PLANS
OUT = HERE / "policies"


def plan_doc(key: str) -> str:
    p = P[key]
    n = p["name"]
    oon = (
        f"Out-of-network care is covered after a separate out-of-network deductible of {p['oon_deductible']} per member, "
        f"then you pay {p['oon_coinsurance']} coinsurance. Out-of-network providers may also bill you the difference "
        "between their charge and the allowed amount (balance billing); that difference never counts toward your "
        "deductible or out-of-pocket maximum."
        if p["oon_deductible"]
        else "The Bronze plan does not cover out-of-network care, except emergency care and care you could not get in "
        "the network that Acme Health approved in advance. Emergency care is always paid at the in-network level."
    )
    referral = (
        "You need a referral from your primary care provider (PCP) before you see a specialist. Without a referral the "
        "specialist visit is not covered. Referrals are not needed for OB-GYN care, mental health care, or urgent care."
        if p["referral"]
        else "You do not need a referral to see a specialist in the network."
    )
    chiro = (
        f"Chiropractic care: up to {p['chiro_visits']} visits per calendar year, {p['specialist']} copay per visit."
        if p["chiro_visits"]
        else "Chiropractic care is not covered on the Bronze plan."
    )
    vision = (
        f"Routine adult eye exam: one per calendar year, {p['eye_exam']} copay."
        if p["eye_exam"]
        else "Routine adult eye exams are not covered on the Bronze plan (children's eye exams are covered on every plan)."
    )
    if p["eyewear"]:
        vision += f" Glasses or contact lenses: an allowance of {p['eyewear']} every 12 months."
    hearing = f"Hearing aids: up to {p['hearing_aids']}." if p["hearing_aids"] else f"Hearing aids are not covered on the {n} plan."
    return f"""---
plan: {key}
plan_year: {F.PLAN_YEAR}
---
# Acme Health {n} Plan — Summary of Benefits {F.PLAN_YEAR}

The {n} plan is an {p["network_type"]} plan on the {p["network"]} network. This summary explains
what you pay for covered services from January 1 to December 31, {F.PLAN_YEAR}. The full policy
wording prevails if it differs from this summary.

## Premium

The monthly premium for one member on the {n} plan is {p["premium"]}. Premiums for families
depend on the number and age of the members covered.

## Deductible

The {n} plan's in-network deductible is {p["deductible"]} per member and {p["deductible_family"]}
per family each calendar year. You pay the full allowed amount for most services until you have
paid the deductible; after that you pay coinsurance. Preventive care, and the copays listed
below for office visits and generic drugs, are not subject to the deductible.

## Out-of-pocket maximum

The in-network out-of-pocket maximum is {p["oop_max"]} per member and {p["oop_max_family"]} per
family each calendar year. It includes your deductible, copays and coinsurance for covered
in-network care. Once you reach it, the {n} plan pays 100% of covered in-network services for the
rest of the calendar year. Premiums and balance-billed amounts do not count toward it.

## Coinsurance

After the deductible you pay {p["coinsurance"]} coinsurance for covered in-network services that
have no copay, such as hospital stays, imaging and outpatient surgery. {oon}

## Copays for office visits and urgent care

| service | you pay (in network) |
|---|---|
| Primary care visit | {p["pcp"]} copay |
| Specialist visit | {p["specialist"]} copay |
| Urgent care center | {p["urgent_care"]} copay |
| Telehealth visit (Acme Virtual Care) | {p["telehealth"]} copay |
| Mental health or substance use office visit | {p["mental_health_visit"]} copay |

{referral}

## Emergency care

An emergency room visit costs a {p["er"]} copay, waived if you are admitted to the hospital. Emergency
care is covered at the in-network level at any hospital, in or out of the network, in the United
States or abroad. Ambulance transport in an emergency costs {p["coinsurance"]} coinsurance after the
deductible.

## Hospital care

A hospital stay costs {p["inpatient"]}. Planned admissions need prior authorization; an emergency
admission must be reported to Acme Health within {F.EMERGENCY_NOTICE_HOURS} hours.

## Therapy and rehabilitation

Physical therapy, occupational therapy and speech therapy: up to {p["pt_visits"]} visits per
calendar year for each type of therapy, with a {p["specialist"]} copay per visit. {chiro}

## Prescription drugs

| tier | retail, 30-day supply |
|---|---|
| Tier 1: generic | {p["generic"]} copay |
| Tier 2: preferred brand | {p["preferred_brand"]} copay |
| Tier 3: non-preferred brand | {p["non_preferred"]} copay |
| Tier 4: specialty | {p["specialty"]} per fill |

A {F.MAIL_ORDER_SUPPLY}-day supply by mail order costs two retail copays. See the Pharmacy Benefits
document for the formulary, step therapy and the specialty pharmacy.

## Vision and hearing

{vision} {hearing}

## Maternity

Prenatal and postnatal visits are covered at no cost. Delivery and the hospital stay cost
{p["delivery"]}.{f" The {n} plan also reimburses doula services up to {p['doula']} per pregnancy." if p["doula"] else ""}

## Infertility

The {n} plan covers {p["infertility"]}.
"""


def overview_doc() -> str:
    rows = [
        ("Network", "network"),
        ("Plan type", "network_type"),
        ("Monthly premium (one member)", "premium"),
        ("Deductible (member / family)", None),
        ("Out-of-pocket maximum (member / family)", None),
        ("Coinsurance after the deductible", "coinsurance"),
        ("Primary care visit", "pcp"),
        ("Specialist visit", "specialist"),
        ("Urgent care", "urgent_care"),
        ("Emergency room", "er"),
        ("Telehealth", "telehealth"),
        ("Generic drugs", "generic"),
    ]
    lines = ["| | Bronze | Silver | Gold |", "|---|---|---|---|"]
    for label, key in rows:
        if label.startswith("Deductible"):
            vals = [f"{P[k]['deductible']} / {P[k]['deductible_family']}" for k in P]
        elif label.startswith("Out-of-pocket"):
            vals = [f"{P[k]['oop_max']} / {P[k]['oop_max_family']}" for k in P]
        else:
            vals = [str(P[k][key]) for k in P]
        lines.append(f"| {label} | " + " | ".join(vals) + " |")
    table = "\n".join(lines)
    return f"""# Acme Health Plans {F.PLAN_YEAR} — Overview

Acme Health offers three individual and family plans for {F.PLAN_YEAR}: Bronze, Silver and Gold.
All three cover the same essential health benefits — preventive care at no cost, emergency care
anywhere, hospital care, maternity and newborn care, mental health and substance use care,
prescription drugs, rehabilitation, and pediatric dental and vision care. They differ in what you
pay each month and what you pay when you get care.

## Comparing the plans

{table}

## Which plan fits you

The Bronze plan has the lowest premium and the highest deductible: it suits members who expect
few doctor visits and want protection against large bills. It uses the smaller Acme Select network
and needs referrals for specialists.

The Silver plan balances premium and cost sharing and adds out-of-network coverage on the larger
Acme Choice network.

The Gold plan has the highest premium and the lowest deductible ({P["gold"]["deductible"]}); it suits
members who see doctors often, take brand-name drugs or expect a hospital stay or a baby. Gold also
adds adult vision and hearing benefits, doula services and medical evacuation when traveling.

## Changing plans

You can change plans during open enrollment ({F.OPEN_ENROLLMENT}) or within {F.SPECIAL_ENROLLMENT_DAYS}
days of a qualifying life event. See Enrollment and Membership.
"""


def network_doc() -> str:
    return f"""# Provider Network Rules

## The two networks

The Bronze plan uses the **Acme Select** network, an exclusive provider organization (EPO): care is
covered only from providers in Acme Select, except emergencies and approved exceptions. The Silver
and Gold plans use the larger **Acme Choice** network, a preferred provider organization (PPO): you
may see any provider, and you pay less in the network.

## Finding an in-network provider

Search the provider directory in the Acme Health app or at the member portal, or call member
services at {F.PHONE}. Check that the provider is in your plan's network (Acme Select or Acme
Choice) before an appointment: a provider's network can change during the year. If the directory
listed a provider as in network when you booked and that was wrong, you pay in-network cost sharing.

## Primary care provider

Every Bronze member chooses a primary care provider (PCP) from Acme Select; Acme Health assigns one
if you do not choose within 30 days of enrollment. You can change your PCP once a month in the app;
the change takes effect on the first day of the next month. Silver and Gold members are encouraged,
but not required, to choose a PCP.

## Referrals

On the Bronze plan you need a referral from your PCP before seeing a specialist; referrals are valid
for 6 months and up to 6 visits. No referral is needed for OB-GYN care, mental health care, urgent
care or emergencies. Silver and Gold members never need referrals.

## Out-of-network care

Silver and Gold cover out-of-network care at a lower level after a separate out-of-network
deductible (Silver {P["silver"]["oon_deductible"]}, Gold {P["gold"]["oon_deductible"]} per member).
Out-of-network providers may balance bill you. Bronze does not cover out-of-network care.

## Continuity of care

If your doctor leaves the network while you are in active treatment, pregnant, or scheduled for
surgery, you may keep seeing that doctor at in-network cost sharing for up to 90 days. Ask member
services to arrange it.

## Surprise bills

You are protected from surprise bills: emergency care, and care from out-of-network doctors at an
in-network hospital (such as anesthesiologists or radiologists) that you did not choose, is billed
at in-network cost sharing, and the provider may not balance bill you.
"""


def prior_auth_doc() -> str:
    items = "\n".join(f"- {x}" for x in F.PRIOR_AUTH)
    return f"""# Prior Authorization

Some services are covered only when Acme Health approves them before you receive them. This is
called prior authorization (also preauthorization). It applies on every plan.

## Services that need prior authorization

{items}

## Who requests it

In-network providers request prior authorization for you. If you use an out-of-network provider
(Silver and Gold), you are responsible for making sure the request is made: call {F.PHONE} or ask the
provider to submit it through the provider portal.

## How long a decision takes

Acme Health decides standard requests within {F.PRIOR_AUTH_STANDARD_DAYS} calendar days and urgent
requests within {F.PRIOR_AUTH_URGENT_HOURS} hours. An approval states the service, the number of
visits or days approved, and how long it is valid (usually 90 days).

## Emergencies

Emergency care never needs prior authorization. If you are admitted to a hospital after an
emergency, the hospital or you must notify Acme Health within {F.EMERGENCY_NOTICE_HOURS} hours.

## If you do not get prior authorization

If a service that needs prior authorization is provided without it, the claim may be denied. For
in-network care, the provider may not bill you for a service denied for lack of authorization. For
out-of-network care you may have to pay the full cost.

## If a request is denied

You can appeal a prior authorization denial; see Claims and Appeals. Urgent appeals are decided
within {F.APPEAL_URGENT_HOURS} hours.
"""


def claims_doc() -> str:
    return f"""# Claims and Appeals

## Claims from in-network providers

In-network providers send claims to Acme Health for you. You pay only your copay, deductible or
coinsurance. After each claim you receive an Explanation of Benefits (EOB) in the app and by mail if
you asked for paper.

## Filing a claim yourself

If you paid an out-of-network provider or paid for care abroad, file a claim within
{F.CLAIM_FILING_DAYS} days of the date of service. Use the claim form (form ACM-CL1) in the app or the
member portal, and attach an itemized bill and proof of payment. Bills in another currency are
converted at the exchange rate of the date of service. Acme Health processes complete claims within
{F.CLAIM_PROCESSING_DAYS} days.

## Appeals

If Acme Health denies a claim or a prior authorization request, in whole or in part, you can appeal.

### Internal appeal

File an internal appeal within {F.APPEAL_FILING_DAYS} days of the denial notice, in the app, by mail
or by calling {F.PHONE}. Include the denial notice, why you disagree, and any records or letters
from your doctor. Acme Health decides appeals about care you have not yet received within
{F.APPEAL_PRE_SERVICE_DAYS} days and appeals about care you already received within
{F.APPEAL_POST_SERVICE_DAYS} days. Urgent appeals are decided within {F.APPEAL_URGENT_HOURS} hours.
The appeal is reviewed by people who did not make the first decision, including a doctor when
medical judgment is involved.

### External review

If the internal appeal is denied, you can ask for an external review by an independent review
organization within {F.EXTERNAL_REVIEW_MONTHS} months of the final internal denial. The reviewer's
decision is binding on Acme Health. External review costs you nothing.

## Getting help

Member services ({F.PHONE}, {F.HOURS}) can help you file a claim or an appeal. You may also
appoint someone, such as a family member or your doctor, to appeal for you.
"""


def pharmacy_doc() -> str:
    rows = "\n".join(
        f"| {P[k]['name']} | {P[k]['generic']} | {P[k]['preferred_brand']} | {P[k]['non_preferred']} | {P[k]['specialty']} |" for k in P
    )
    return f"""# Pharmacy Benefits

## Drug tiers and what you pay

Every covered drug is on the Acme Health formulary in one of four tiers. A retail fill is up to a
30-day supply.

| plan | Tier 1 generic | Tier 2 preferred brand | Tier 3 non-preferred brand | Tier 4 specialty |
|---|---|---|---|---|
{rows}

On the Bronze plan, Tier 2 and Tier 3 drugs are subject to the deductible; generics are not. On
Silver and Gold, drug copays apply from the first fill.

## Mail order

A {F.MAIL_ORDER_SUPPLY}-day supply of a maintenance drug from AcmeRx Mail costs two retail copays, so
you get three months for the price of two. Order in the app; delivery takes 5 to 7 days.

## Specialty drugs

Tier 4 specialty drugs (for example for multiple sclerosis, rheumatoid arthritis or hepatitis C)
need prior authorization and must be filled by AcmeRx Specialty, which delivers to your home and
offers a pharmacist 24 hours a day.

## Formulary exceptions and step therapy

Some drugs need step therapy: you try a lower-cost drug first. If a drug is not on the formulary or
step therapy is not right for you, your doctor can ask for an exception. Standard exception requests
are decided within 72 hours, urgent ones within 24 hours.

## Vaccines at the pharmacy

Flu, COVID-19, shingles and other routine vaccines are free at in-network pharmacies on every plan.
Travel vaccines (such as typhoid, yellow fever or Japanese encephalitis) are covered at no cost on
Silver and Gold; they are not covered on Bronze.
"""


def mental_doc() -> str:
    rows = "\n".join(f"| {P[k]['name']} | {P[k]['mental_health_visit']} |" for k in P)
    return f"""# Mental Health and Substance Use Care

Acme Health covers mental health and substance use care on the same terms as medical care, with no
annual visit limits.

## Office visits and therapy

| plan | therapy or psychiatry office visit |
|---|---|
{rows}

Telehealth therapy through Acme Virtual Care costs the telehealth copay of your plan. You do not need
a referral for mental health care on any plan.

## Intensive care

Inpatient psychiatric care, residential treatment, partial hospitalization and intensive outpatient
programs are covered like a hospital stay on your plan. Residential treatment needs prior
authorization; an emergency psychiatric admission must be reported within
{F.EMERGENCY_NOTICE_HOURS} hours.

## Crisis support

If you are in crisis, call or text 988 (the Suicide and Crisis Lifeline) or go to the nearest
emergency room. Acme Health's behavioral health line, {F.PHONE} (option 4), is open 24 hours a day.

## Substance use treatment

Detoxification, medication for opioid use disorder (such as buprenorphine), counseling and
residential rehabilitation are covered. Medication for opioid use disorder needs no prior
authorization.
"""


def maternity_doc() -> str:
    rows = "\n".join(f"| {P[k]['name']} | {P[k]['delivery']} |" for k in P)
    return f"""# Maternity and Newborn Care

## Prenatal and postnatal care

Prenatal visits, routine ultrasounds, prenatal screening tests and postnatal visits are preventive
care: they cost nothing on every plan when you use an in-network provider. Breast pumps are covered
at no cost, one per pregnancy.

## Delivery and the hospital stay

| plan | delivery and hospital stay |
|---|---|
{rows}

You may stay in the hospital at least 48 hours after a vaginal delivery and 96 hours after a
cesarean section. Let Acme Health know about a planned admission for delivery by the 30th week of
pregnancy; no other prior authorization is needed for the delivery.

## Doulas and childbirth classes

The Gold plan reimburses doula services up to {P["gold"]["doula"]} per pregnancy. Childbirth and
breastfeeding classes are reimbursed up to $150 per pregnancy on every plan.

## Adding your newborn

Add your baby to your plan within {F.NEWBORN_DAYS} days of birth in the app or by calling {F.PHONE}.
Coverage then starts from the date of birth. If you add the baby later, coverage starts only at the
next open enrollment or qualifying event.
"""


def travel_doc() -> str:
    return f"""# Travel Coverage

## Emergencies abroad

Emergency care outside the United States is covered on every plan at the in-network level: you pay
your plan's emergency room copay and coinsurance. Pay the provider, keep an itemized bill and proof
of payment, and file a claim within {F.CLAIM_FILING_DAYS} days of the date of service.

## Non-emergency care abroad

Bronze and Silver do not cover routine or planned care outside the United States. The Gold plan
covers it at the out-of-network level (after the {P["gold"]["oon_deductible"]} out-of-network deductible,
{P["gold"]["oon_coinsurance"]} coinsurance).

## Medical evacuation and travel assistance

The Gold plan covers medical evacuation to the nearest adequate hospital, or back home when
medically necessary, up to {P["gold"]["evacuation"]} per trip, and includes a 24-hour travel
assistance line. Bronze and Silver do not cover medical evacuation; consider travel insurance.

## Travel vaccines

Travel vaccines are covered at no cost on Silver and Gold at in-network pharmacies or clinics. They
are not covered on Bronze.

## Medicine for your trip

You can ask for a vacation override to fill up to a 90-day supply of a maintenance drug before a
trip of more than 30 days. Call AcmeRx at {F.PHONE} (option 2).
"""


def exclusions_doc() -> str:
    return """# Exclusions and Limitations

These services are not covered by any Acme Health plan, unless the plan documents say otherwise.

## Services that are not covered

- Cosmetic surgery and procedures whose main purpose is to improve appearance. Reconstructive
  surgery after an injury, an illness or a mastectomy is covered.
- Experimental or investigational treatments, except approved clinical trials (routine costs only).
- Weight-loss programs. Bariatric surgery is covered only with prior authorization when a body
  mass index of 40 or more (or 35 with a related condition) is documented.
- Long-term custodial care in a nursing home.
- Adult dental care (pediatric dental care is covered).
- Hearing aids on Bronze and Silver.
- Routine foot care, such as trimming nails or removing corns, unless you have diabetes.
- Care covered by workers' compensation.
- Services you receive outside the United States that are not emergencies (Bronze and Silver).
- Reversal of voluntary sterilization.
- Surrogacy arrangements.

## Limitations

- Therapy visits are limited per calendar year (see your plan's Summary of Benefits).
- Infertility treatment is limited by plan; in vitro fertilization (IVF) is covered only on Gold,
  up to 2 cycles per lifetime.
- Private-duty nursing is covered only when approved in advance as medically necessary.
"""


def enrollment_doc() -> str:
    return f"""# Enrollment and Membership

## Open enrollment

You can enroll in a plan, or change plans, during open enrollment from {F.OPEN_ENROLLMENT}. The new
coverage starts on January 1.

## Special enrollment

A qualifying life event — marriage, the birth or adoption of a child, losing other coverage, or
moving to a new area — lets you enroll or change plans within {F.SPECIAL_ENROLLMENT_DAYS} days of
the event. Newborns must be added within {F.NEWBORN_DAYS} days of birth.

## Changing plans during the year

If you change plans after a qualifying event, what you already paid toward your deductible and
out-of-pocket maximum in the same calendar year is credited to the new plan.

## Your ID card

Your digital ID card is in the Acme Health app. To get a replacement plastic card, order it in the
app or the member portal, or call {F.PHONE}; it arrives in 7 to 10 days. You can use the digital card
meanwhile.

## Member portal and app

Reset a forgotten portal password with "Forgot password" on the sign-in page; a reset link is sent to
your e-mail address on file and is valid for 30 minutes. If you no longer have access to that
address, call member services to verify your identity.

## Paying premiums

Premiums are due on the first day of each month. There is a grace period of 31 days; if the premium
is still unpaid after that, coverage ends at the end of the grace period.

## Contact

Member services: {F.PHONE}, {F.HOURS}. Nurse line, 24 hours a day: {F.NURSE_LINE}.
"""


def rights_html() -> str:
    return """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Member Rights and Responsibilities</title>
<style>body { font-family: sans-serif; }</style></head>
<body>
<nav><a href="/">Home</a></nav>
<h1>Member Rights and Responsibilities</h1>
<p>As an Acme Health member you have rights that protect you, and responsibilities that help us serve you.</p>
<h2>Your rights</h2>
<ul>
<li>To be treated with respect and dignity, and to have your privacy protected.</li>
<li>To get information about your plan, its providers and your rights, in plain language and in other languages on request.</li>
<li>To a copy of your medical records and claims history, free of charge, within 30 days of asking.</li>
<li>To appeal any decision about your coverage, and to an external review of a final denial.</li>
<li>To file a complaint (grievance) about the quality of care or service; complaints are answered within 30 days.</li>
</ul>
<h2>Your responsibilities</h2>
<ul>
<li>To give your providers and Acme Health accurate information.</li>
<li>To pay your premiums, copays, deductible and coinsurance on time.</li>
<li>To tell Acme Health within 30 days about a change of address or of other coverage.</li>
</ul>
<h2>Privacy of your health information</h2>
<p>Acme Health uses your health information only to pay for and manage your care and as the law allows.
We never sell it. You can ask who your information was shared with in the past six years.</p>
<script>window.analytics = {};</script>
</body></html>
"""


def telehealth_lines() -> list[str]:
    return [
        "Acme Virtual Care and the Nurse Line",
        "",
        "Acme Virtual Care offers video visits with doctors, nurse practitioners and therapists",
        "24 hours a day, 7 days a week, in the Acme Health app.",
        "",
        f"Cost: Bronze {P['bronze']['telehealth']}, Silver {P['silver']['telehealth']} and Gold {P['gold']['telehealth']} per visit.",
        "The deductible does not apply to telehealth visits.",
        "",
        "Use it for colds, flu, rashes, allergies, urinary tract infections, prescription refills",
        "and therapy sessions. It is not for emergencies: call 911 instead.",
        "",
        f"The 24-hour Nurse Line at {F.NURSE_LINE} is free on every plan. A registered nurse",
        "helps you decide where to get care and answers questions about symptoms and medicines.",
    ]


def write_pdf(path: Path, lines: list[str]) -> None:
    """A one-page PDF with Helvetica text (enough for the ingestion path; no dependency)."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    body = ["BT", "/F1 11 Tf", "14 TL", "60 780 Td"]
    for ln in lines:
        body.append(f"({esc(ln)}) Tj T*")
    body.append("ET")
    stream = "\n".join(body).encode("latin-1")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + o + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))


DOCS = {
    "plans-overview.md": overview_doc,
    "bronze-plan.md": lambda: plan_doc("bronze"),
    "silver-plan.md": lambda: plan_doc("silver"),
    "gold-plan.md": lambda: plan_doc("gold"),
    "provider-network.md": network_doc,
    "prior-authorization.md": prior_auth_doc,
    "claims-and-appeals.md": claims_doc,
    "pharmacy-benefits.md": pharmacy_doc,
    "mental-health.md": mental_doc,
    "maternity-and-newborn.md": maternity_doc,
    "travel-coverage.md": travel_doc,
    "exclusions.md": exclusions_doc,
    "enrollment-and-membership.md": enrollment_doc,
    "member-rights.html": rights_html,
}


# -- the retrieval question set ---------------------------------------------------------------
def questions() -> list[dict]:
    qs: list[dict] = []

    def q(question: str, *expected: tuple[str, str]) -> None:
        qs.append({"id": f"q{len(qs) + 1:03d}", "question": question, "expected": [{"document": d, "contains": c} for d, c in expected]})

    for key, p in P.items():
        n, doc = p["name"], f"{key}-plan.md"
        q(
            f"How much is the deductible on the {n} plan?",
            (doc, f"deductible is {p['deductible']} per member"),
            ("plans-overview.md", f"{p['deductible']} / {p['deductible_family']}"),
        )
        q(
            f"What's the most I could pay out of pocket in a year with {n}?",
            (doc, f"out-of-pocket maximum is {p['oop_max']}"),
            ("plans-overview.md", f"{p['oop_max']} / {p['oop_max_family']}"),
        )
        q(
            f"I'm on {n}. What does a specialist visit cost me?",
            (doc, f"| Specialist visit | {p['specialist']} copay"),
            ("plans-overview.md", "| Specialist visit |"),
        )
        q(
            f"What do I pay for the emergency room on the {n} plan?",
            (doc, f"emergency room visit costs a {p['er']} copay"),
            ("plans-overview.md", "| Emergency room |"),
        )
        q(f"How many physical therapy sessions does {n} cover each year?", (doc, f"up to {p['pt_visits']} visits per"))
        q(
            f"Generic prescription copay for {n} members?",
            (doc, f"| Tier 1: generic | {p['generic']} copay"),
            ("pharmacy-benefits.md", f"| {n} | {p['generic']} |"),
            ("plans-overview.md", "| Generic drugs |"),
        )
        q(
            f"What is the monthly premium of {n} for a single person?",
            (doc, f"premium for one member on the {n} plan is {p['premium']}"),
            ("plans-overview.md", "| Monthly premium (one member) |"),
        )
    q("Do I need approval before getting an MRI?", ("prior-authorization.md", "MRI, CT and PET scans"))
    q(
        "How long does Acme take to decide on a preauthorization request?",
        ("prior-authorization.md", f"within {F.PRIOR_AUTH_STANDARD_DAYS} calendar days"),
    )
    q(
        "I was admitted to hospital through the ER. Who do I have to tell and when?",
        ("prior-authorization.md", f"notify Acme Health within {F.EMERGENCY_NOTICE_HOURS} hours"),
        ("bronze-plan.md", "emergency admission must be reported"),
        ("silver-plan.md", "emergency admission must be reported"),
        ("gold-plan.md", "emergency admission must be reported"),
    )
    q("What happens if my doctor didn't get prior authorization?", ("prior-authorization.md", "the claim may be denied"))
    q(
        "How long do I have to submit a claim for an out-of-network doctor I paid myself?",
        ("claims-and-appeals.md", f"within\n{F.CLAIM_FILING_DAYS} days of the date of service"),
    )
    q("Which form do I use to file a claim?", ("claims-and-appeals.md", "form ACM-CL1"))
    q("What is the deadline to appeal a denied claim?", ("claims-and-appeals.md", f"internal appeal within {F.APPEAL_FILING_DAYS} days"))
    q("Can an independent reviewer look at my denied appeal?", ("claims-and-appeals.md", "independent review"))
    q(
        "How quickly are urgent appeals decided?",
        ("claims-and-appeals.md", f"Urgent appeals are decided within {F.APPEAL_URGENT_HOURS} hours"),
        ("prior-authorization.md", f"Urgent appeals are decided\nwithin {F.APPEAL_URGENT_HOURS} hours"),
    )
    q(
        "Is there a cheaper way to get my monthly blood pressure pills?",
        ("pharmacy-benefits.md", f"{F.MAIL_ORDER_SUPPLY}-day supply of a maintenance drug"),
    )
    q("Where do I have to fill my specialty medication?", ("pharmacy-benefits.md", "filled by AcmeRx Specialty"))
    q("My drug isn't on the formulary. What can my doctor do?", ("pharmacy-benefits.md", "ask for an exception"))
    q("Are flu shots free?", ("pharmacy-benefits.md", "Flu, COVID-19, shingles"))
    q(
        "Does the Bronze plan pay for travel vaccines?",
        ("travel-coverage.md", "not covered on Bronze"),
        ("pharmacy-benefits.md", "not covered on Bronze"),
    )
    q(
        "Will Acme fly me home if I get seriously ill overseas?",
        ("travel-coverage.md", "medical evacuation to the nearest adequate hospital"),
    )
    q(
        "I need to see a doctor while on vacation in Spain, it's not an emergency. Am I covered?",
        ("travel-coverage.md", "Non-emergency care abroad"),
    )
    q("How do I get 3 months of medicine before a long trip?", ("travel-coverage.md", "vacation override"))
    q(
        "How soon must I add my baby to my insurance?",
        ("maternity-and-newborn.md", f"within {F.NEWBORN_DAYS} days of birth"),
        ("enrollment-and-membership.md", f"Newborns must be added within {F.NEWBORN_DAYS} days"),
    )
    q("Is a breast pump covered?", ("maternity-and-newborn.md", "Breast pumps are covered"))
    q("Does any plan pay for a doula?", ("maternity-and-newborn.md", "reimburses doula services"), ("gold-plan.md", "doula services"))
    q("How long can I stay in hospital after a C-section?", ("maternity-and-newborn.md", "96 hours after a\ncesarean section"))
    q("Is there a limit on how many therapy sessions for depression I can have?", ("mental-health.md", "no\nannual visit limits"))
    q("Who can I call right now if I'm having thoughts of suicide?", ("mental-health.md", "call or text 988"))
    q(
        "Does residential rehab need approval in advance?",
        ("mental-health.md", "Residential treatment needs prior\nauthorization"),
        ("prior-authorization.md", "residential treatment for mental health"),
    )
    q("Does Acme cover a nose job?", ("exclusions.md", "Cosmetic surgery"))
    q("Is IVF covered?", ("exclusions.md", "in vitro fertilization (IVF) is covered only on Gold"), ("gold-plan.md", "IVF cycles"))
    q("Are dental cleanings for adults covered?", ("exclusions.md", "Adult dental care"))
    q("When is open enrollment?", ("enrollment-and-membership.md", F.OPEN_ENROLLMENT), ("plans-overview.md", F.OPEN_ENROLLMENT))
    q("I lost my insurance card. How do I get a new one?", ("enrollment-and-membership.md", "replacement plastic card"))
    q("I forgot my portal password", ("enrollment-and-membership.md", "Forgot password"))
    q("What happens if I pay my premium late?", ("enrollment-and-membership.md", "grace period of 31 days"))
    q(
        "If I switch plans after getting married, do I lose what I paid toward my deductible?",
        ("enrollment-and-membership.md", "credited to the new plan"),
    )
    q(
        "Do I need a referral to see a dermatologist on Bronze?",
        ("provider-network.md", "you need a referral from your PCP"),
        ("bronze-plan.md", "You need a referral from your primary care provider"),
    )
    q("How do I check whether a doctor is in my network?", ("provider-network.md", "Search the provider directory"))
    q(
        "My anesthesiologist was out of network at an in-network hospital. Do I have to pay the full bill?",
        ("provider-network.md", "surprise bills"),
    )
    q(
        "My oncologist is leaving the network in the middle of my chemo. Can I keep seeing her?",
        ("provider-network.md", "Continuity of care"),
    )
    q("Can I get a copy of my medical records?", ("member-rights.html", "copy of your medical records"))
    q("Does Acme sell my health data?", ("member-rights.html", "We never sell it"))
    q(
        "Is there a nurse I can call at night?",
        ("telehealth-and-nurse-line.pdf", "24-hour Nurse Line"),
        ("enrollment-and-membership.md", "Nurse line, 24 hours a day"),
    )
    q(
        "How much is a video visit with a doctor on Silver?",
        ("telehealth-and-nurse-line.pdf", "Silver $10"),
        ("silver-plan.md", "| Telehealth visit (Acme Virtual Care) | $10 copay"),
        ("plans-overview.md", "| Telehealth |"),
    )
    return qs


# -- FAQ pairs (chat form) for fine-tuning and held-out evaluation ------------------------------
def faq_facts() -> list[tuple[list[str], str, str]]:
    """(training questions, held-out question, answer)."""
    out: list[tuple[list[str], str, str]] = []
    for p in P.values():
        n = p["name"]
        out += [
            (
                [f"What is the deductible for the {n} plan?", f"How big is the {n} deductible?", f"Tell me the annual deductible on {n}."],
                f"On {n}, how much do I have to pay before coinsurance starts?",
                (
                    f"The {n} plan's in-network deductible is {p['deductible']} per member "
                    f"and {p['deductible_family']} per family each calendar year."
                ),
            ),
            (
                [f"What is the family deductible on {n}?", f"How much is the {n} deductible for a family?", f"{n} plan family deductible?"],
                f"If my whole family is on {n}, what deductible applies?",
                f"The family deductible on {n} is {p['deductible_family']} per calendar year ({p['deductible']} per member).",
            ),
            (
                [
                    f"What is the out-of-pocket maximum on {n}?",
                    f"What's the {n} out-of-pocket limit?",
                    f"Most I can spend in a year on the {n} plan?",
                ],
                f"Is there a cap on what I pay each year with {n}?",
                (
                    f"The {n} plan's in-network out-of-pocket maximum is {p['oop_max']} per member "
                    f"and {p['oop_max_family']} per family per calendar year; after that the plan pays 100% of "
                    f"covered in-network care."
                ),
            ),
            (
                [
                    f"What coinsurance do I pay on {n}?",
                    f"After the deductible, what percentage do I pay with {n}?",
                    f"{n} coinsurance rate?",
                ],
                f"Once I've met my {n} deductible, what share of the bill is mine?",
                f"After the deductible, {n} members pay {p['coinsurance']} coinsurance for covered in-network services that have no copay.",
            ),
            (
                [f"How much is a primary care visit on {n}?", f"What's the copay to see my regular doctor on {n}?", f"{n} PCP copay?"],
                f"What will a check-up with my family doctor cost on the {n} plan?",
                f"A primary care visit costs a {p['pcp']} copay on the {n} plan. Preventive check-ups are free.",
            ),
            (
                [
                    f"How much does a specialist visit cost on {n}?",
                    f"What's the specialist copay for {n}?",
                    f"Seeing a cardiologist on {n}, what do I pay?",
                ],
                f"What do {n} members pay to see a specialist?",
                f"A specialist visit costs a {p['specialist']} copay on the {n} plan."
                + (" You need a referral from your PCP first." if p["referral"] else " No referral is needed."),
            ),
            (
                [f"What is the urgent care copay on {n}?", f"How much is urgent care with the {n} plan?", f"{n} urgent care cost?"],
                f"If I go to an urgent care clinic on {n}, what's my cost?",
                f"An urgent care visit costs a {p['urgent_care']} copay on the {n} plan.",
            ),
            (
                [
                    f"How much is an ER visit on {n}?",
                    f"What's the emergency room copay for {n}?",
                    f"Going to the emergency room on {n}, what will I owe?",
                ],
                f"What does the {n} plan charge for an emergency room visit?",
                (
                    f"An emergency room visit costs a {p['er']} copay on {n}, waived if you are admitted. "
                    f"Emergency care is covered at the in-network level anywhere."
                ),
            ),
            (
                [f"How much is a telehealth visit on {n}?", f"What does Acme Virtual Care cost on {n}?", f"{n} video visit copay?"],
                f"Is a virtual doctor visit free on {n}?",
                f"A telehealth visit through Acme Virtual Care costs {p['telehealth']} on the {n} plan, and the deductible does not apply.",
            ),
            (
                [
                    f"How many physical therapy visits does {n} cover?",
                    f"What's the PT visit limit on {n}?",
                    f"{n} physical therapy limit per year?",
                ],
                f"How many sessions of physio do I get a year on {n}?",
                f"{n} covers up to {p['pt_visits']} physical therapy visits per calendar year, with a {p['specialist']} copay per visit.",
            ),
            (
                [f"Does {n} cover chiropractic care?", f"Are chiropractor visits covered on the {n} plan?", f"{n} chiropractic benefit?"],
                f"Can I see a chiropractor on {n}?",
                f"{n} covers up to {p['chiro_visits']} chiropractic visits per calendar year at the {p['specialist']} specialist copay."
                if p["chiro_visits"]
                else "Chiropractic care is not covered on the Bronze plan.",
            ),
            (
                [f"What do generic drugs cost on {n}?", f"What's the Tier 1 copay on {n}?", f"{n} generic prescription price?"],
                f"How much will I pay for a generic medicine with {n}?",
                f"Tier 1 generic drugs cost a {p['generic']} copay for a 30-day retail supply on {n}.",
            ),
            (
                [
                    f"What do preferred brand drugs cost on {n}?",
                    f"Tier 2 copay on the {n} plan?",
                    f"How much is a preferred brand-name drug on {n}?",
                ],
                f"On {n}, what is the price of a brand-name drug that's on the preferred list?",
                f"Tier 2 preferred brand drugs cost a {p['preferred_brand']} copay for a 30-day supply on {n}"
                + (", after the deductible." if n == "Bronze" else "."),
            ),
            (
                [f"What do specialty drugs cost on {n}?", f"Tier 4 cost on the {n} plan?", f"How much is a specialty medication on {n}?"],
                f"With {n}, what will a specialty drug fill cost me?",
                (
                    f"Tier 4 specialty drugs cost {p['specialty']} per fill on {n}; they need prior "
                    f"authorization and are filled by AcmeRx Specialty."
                ),
            ),
            (
                [f"What is the monthly premium for {n}?", f"How much does the {n} plan cost per month?", f"{n} premium for one person?"],
                f"What's the monthly price of {n} for an individual?",
                f"The {n} plan's monthly premium for one member is {p['premium']}.",
            ),
            (
                [
                    f"Do I need a referral for specialists on {n}?",
                    f"Does {n} require referrals?",
                    f"Can I see a specialist without a referral on {n}?",
                ],
                f"On the {n} plan, must my PCP refer me before I see a specialist?",
                "Yes. Bronze members need a referral from their primary care provider before seeing a "
                "specialist, except for OB-GYN, mental health and urgent care."
                if p["referral"]
                else f"No. {n} members do not need a referral to see a specialist in the Acme Choice network.",
            ),
            (
                [f"Does {n} cover out-of-network doctors?", f"Can I use out-of-network providers on {n}?", f"{n} out-of-network coverage?"],
                f"If my doctor isn't in network, will {n} pay anything?",
                f"Yes. {n} covers out-of-network care after a separate {p['oon_deductible']} out-of-network "
                f"deductible, then {p['oon_coinsurance']} coinsurance; the provider may balance bill you."
                if p["oon_deductible"]
                else "No. Bronze covers only Acme Select network providers, except emergencies and exceptions approved in advance.",
            ),
            (
                [f"Does {n} cover eye exams?", f"Is a yearly eye exam covered on {n}?", f"{n} vision exam benefit?"],
                f"Will {n} pay for my annual eye test?",
                f"{n} covers one routine adult eye exam per calendar year with a {p['eye_exam']} copay"
                + (f", plus a {p['eyewear']} eyewear allowance every 12 months." if p["eyewear"] else ".")
                if p["eye_exam"]
                else "Routine adult eye exams are not covered on Bronze; children's eye exams are covered on every plan.",
            ),
            (
                [f"Does {n} cover hearing aids?", f"Are hearing aids included in {n}?", f"{n} hearing aid benefit?"],
                f"Can I get hearing aids paid for on the {n} plan?",
                f"Gold covers hearing aids up to {p['hearing_aids']}."
                if p["hearing_aids"]
                else f"Hearing aids are not covered on the {n} plan.",
            ),
            (
                [f"What does having a baby cost on {n}?", f"How much is delivery on the {n} plan?", f"{n} maternity hospital stay cost?"],
                f"Giving birth on {n}, what's my share of the hospital bill?",
                f"On {n}, prenatal and postnatal visits are free and delivery with the hospital stay costs {p['delivery']}.",
            ),
            (
                [f"Does {n} cover infertility treatment?", f"What fertility benefits does {n} have?", f"{n} infertility coverage?"],
                f"Will {n} help pay for fertility treatment?",
                f"The {n} plan covers {p['infertility']}.",
            ),
            (
                [
                    f"How much is a therapy session on {n}?",
                    f"What's the copay for a psychiatrist on {n}?",
                    f"{n} mental health visit cost?",
                ],
                f"What will counselling cost me on the {n} plan?",
                (
                    f"A mental health or substance use office visit costs a {p['mental_health_visit']} copay "
                    f"on {n}, with no annual visit limit."
                ),
            ),
        ]
    g = [
        (
            [
                "Which services need prior authorization?",
                "What needs preapproval from Acme?",
                "List the services that require prior authorization.",
            ],
            "What kinds of care must Acme approve before I get them?",
            "Prior authorization is needed for " + ", ".join(F.PRIOR_AUTH[:-1]) + f" and {F.PRIOR_AUTH[-1]}.",
        ),
        (
            [
                "How long does a prior authorization decision take?",
                "When will I hear back about a preauthorization?",
                "How fast are prior authorization requests decided?",
            ],
            "How many days until Acme decides on my authorization request?",
            (
                f"Standard prior authorization requests are decided within {F.PRIOR_AUTH_STANDARD_DAYS} "
                f"calendar days, urgent ones within {F.PRIOR_AUTH_URGENT_HOURS} hours."
            ),
        ),
        (
            [
                "Do I need prior authorization for emergency care?",
                "Does the ER need preapproval?",
                "Must I get approval before going to the emergency room?",
            ],
            "In an emergency, do I have to call Acme first?",
            (
                f"No. Emergency care never needs prior authorization; if you are admitted, Acme Health must be "
                f"notified within {F.EMERGENCY_NOTICE_HOURS} hours."
            ),
        ),
        (
            [
                "How long do I have to file a claim?",
                "What's the deadline for submitting a claim?",
                "When must I send in a claim I paid myself?",
            ],
            "I paid a provider out of pocket. By when must I claim it back?",
            (
                f"File a claim within {F.CLAIM_FILING_DAYS} days of the date of service with form ACM-CL1 in "
                f"the app or member portal, with an itemized bill and proof of payment."
            ),
        ),
        (
            ["How long does Acme take to process a claim?", "When will my claim be paid?", "How fast are claims processed?"],
            "After I submit a claim, how long until it is handled?",
            f"Acme Health processes complete claims within {F.CLAIM_PROCESSING_DAYS} days.",
        ),
        (
            ["How do I appeal a denied claim?", "What is the deadline to appeal?", "Can I appeal a denial?"],
            "Acme said no to my claim. How do I challenge that?",
            (
                f"File an internal appeal within {F.APPEAL_FILING_DAYS} days of the denial notice in the app, "
                f"by mail or by phone at {F.PHONE}, with the notice and any supporting records."
            ),
        ),
        (
            ["How long does an appeal take?", "When will my appeal be decided?", "How fast does Acme decide appeals?"],
            "Once I've appealed, how long is the wait for an answer?",
            (
                f"Appeals about care not yet received are decided within {F.APPEAL_PRE_SERVICE_DAYS} days, "
                f"about care already received within {F.APPEAL_POST_SERVICE_DAYS} days, and urgent appeals "
                f"within {F.APPEAL_URGENT_HOURS} hours."
            ),
        ),
        (
            ["What is external review?", "Can someone outside Acme review my denial?", "How do I request an external review?"],
            "My internal appeal failed. Is there anything else I can do?",
            (
                f"Yes. Within {F.EXTERNAL_REVIEW_MONTHS} months of the final internal denial you can ask for an "
                f"external review by an independent review organization; it is free and binding on Acme Health."
            ),
        ),
        (
            ["How does mail order pharmacy work?", "Can I get a 90-day supply by mail?", "What does AcmeRx Mail cost?"],
            "Is it cheaper to get my regular medicine delivered?",
            (
                f"A {F.MAIL_ORDER_SUPPLY}-day supply of a maintenance drug from AcmeRx Mail costs two retail "
                f"copays; order in the app and delivery takes 5 to 7 days."
            ),
        ),
        (
            [
                "Where do I fill specialty drugs?",
                "Which pharmacy handles specialty medications?",
                "Can I get my specialty drug at a regular pharmacy?",
            ],
            "Where do Tier 4 prescriptions have to be filled?",
            "Tier 4 specialty drugs need prior authorization and must be filled by AcmeRx Specialty, which delivers to your home.",
        ),
        (
            ["Are flu shots free?", "Do I pay for vaccines at the pharmacy?", "Is the shingles vaccine covered?"],
            "Will a COVID booster at the pharmacy cost me anything?",
            "Flu, COVID-19, shingles and other routine vaccines are free at in-network pharmacies on every plan.",
        ),
        (
            ["Are travel vaccines covered?", "Does Acme pay for a yellow fever shot?", "Travel vaccine coverage?"],
            "I'm going to Kenya. Will my plan pay for the typhoid vaccine?",
            "Travel vaccines are covered at no cost on Silver and Gold; they are not covered on Bronze.",
        ),
        (
            ["Am I covered for emergencies abroad?", "Does my plan cover the ER in another country?", "What if I get hurt overseas?"],
            "If I have an accident while travelling outside the US, am I covered?",
            (
                f"Yes. Emergency care outside the United States is covered on every plan at the in-network "
                f"level; pay the provider and file a claim within {F.CLAIM_FILING_DAYS} days."
            ),
        ),
        (
            [
                "Is medical evacuation covered?",
                "Will Acme pay to fly me home if I'm sick abroad?",
                "Does any plan include medical evacuation?",
            ],
            "Does my insurance pay for an air ambulance back from abroad?",
            (
                f"Only the Gold plan covers medical evacuation, up to {P['gold']['evacuation']} per trip, with "
                f"a 24-hour travel assistance line. Bronze and Silver do not."
            ),
        ),
        (
            ["How do I add my newborn?", "When must I add my baby to my plan?", "Adding a new baby to my coverage?"],
            "We just had a baby. What do I need to do for her insurance?",
            (
                f"Add your baby within {F.NEWBORN_DAYS} days of birth in the app or by calling {F.PHONE}; "
                f"coverage then starts from the date of birth."
            ),
        ),
        (
            ["Are breast pumps covered?", "Do I get a free breast pump?", "Breast pump coverage?"],
            "Will Acme pay for a breast pump?",
            "Yes, one breast pump per pregnancy is covered at no cost on every plan.",
        ),
        (
            ["Is there a limit on mental health visits?", "How many therapy sessions can I have?", "Are therapy visits capped?"],
            "Will I run out of counselling sessions at some point this year?",
            "No. Mental health and substance use care has no annual visit limits on any Acme Health plan.",
        ),
        (
            ["What should I do in a mental health crisis?", "Who do I call if I'm in crisis?", "Is there a crisis line?"],
            "I'm not feeling safe right now. Who can I talk to?",
            (
                f"Call or text 988 (the Suicide and Crisis Lifeline) or go to the nearest emergency room. "
                f"Acme's behavioral health line at {F.PHONE}, option 4, is open 24 hours a day."
            ),
        ),
        (
            ["Is cosmetic surgery covered?", "Does Acme cover plastic surgery?", "Will my plan pay for a facelift?"],
            "Can I get a tummy tuck covered?",
            "No. Cosmetic procedures are not covered; reconstructive surgery after an injury, an illness or a mastectomy is.",
        ),
        (
            ["Is adult dental covered?", "Does my plan include dental for adults?", "Are fillings covered?"],
            "Will Acme pay for my teeth cleaning?",
            "Adult dental care is not covered by any Acme Health plan; pediatric dental care is.",
        ),
        (
            ["When is open enrollment?", "When can I change my plan?", "What are the open enrollment dates?"],
            "When's the window to switch to another Acme plan?",
            (
                f"Open enrollment runs from {F.OPEN_ENROLLMENT}, with new coverage starting January 1; a "
                f"qualifying life event lets you change within {F.SPECIAL_ENROLLMENT_DAYS} days."
            ),
        ),
        (
            ["How do I get a replacement ID card?", "I lost my member card.", "How can I order a new insurance card?"],
            "My wallet was stolen with my Acme card in it. What now?",
            (
                f"Order a replacement card in the app or member portal, or call {F.PHONE}; it arrives in 7 to "
                f"10 days, and your digital ID card in the app works meanwhile."
            ),
        ),
        (
            ["How do I reset my portal password?", "I forgot my password.", "Can't log in to the member portal."],
            "I'm locked out of my online account. How do I get back in?",
            'Use "Forgot password" on the sign-in page; a reset link valid for 30 minutes is sent to your e-mail address on file.',
        ),
        (
            ["What is the grace period for premiums?", "What if I pay my premium late?", "When does coverage end if I miss a payment?"],
            "I missed this month's premium. Will I lose my coverage?",
            "Premiums are due on the first of the month with a 31-day grace period; coverage ends if the premium is still unpaid after it.",
        ),
        (
            ["How do I know if a doctor is in network?", "How can I find an in-network provider?", "Where is the provider directory?"],
            "Before booking, how do I make sure the clinic takes my Acme plan?",
            (
                f"Search the provider directory in the Acme Health app or member portal, or call {F.PHONE}, and "
                f"check the provider is in your plan's network."
            ),
        ),
        (
            ["What is the nurse line number?", "Is there a 24-hour nurse line?", "Can I talk to a nurse at night?"],
            "Who can I ask about symptoms in the middle of the night?",
            f"The 24-hour Nurse Line at {F.NURSE_LINE} is free on every plan.",
        ),
        (
            ["What is the member services phone number?", "How do I contact Acme Health?", "When is member services open?"],
            "What number do I call to speak to Acme customer service?",
            f"Call member services at {F.PHONE}, {F.HOURS}.",
        ),
        (
            [
                "Am I protected from surprise bills?",
                "Can an out-of-network anesthesiologist bill me the full amount?",
                "What is surprise billing protection?",
            ],
            "I got a huge bill from a radiologist I never chose at my in-network hospital. Do I have to pay it?",
            (
                "No. Care from out-of-network doctors you did not choose at an in-network hospital, and "
                "emergency care, is billed at in-network cost sharing and may not be balance billed."
            ),
        ),
        (
            ["How do I change my primary care provider?", "Can I switch my PCP?", "How often can I change my PCP?"],
            "I want a different family doctor as my PCP. How?",
            "You can change your PCP once a month in the Acme Health app; the change takes effect on the first day of the next month.",
        ),
        (
            [
                "My doctor is leaving the network. Can I keep seeing them?",
                "What is continuity of care?",
                "Can I finish treatment with a doctor who left the network?",
            ],
            "I'm pregnant and my OB just left Acme's network. What are my options?",
            (
                "If you are in active treatment, pregnant or scheduled for surgery, you may keep seeing a "
                "doctor who left the network at in-network cost sharing for up to 90 days; member services "
                "arranges it."
            ),
        ),
        (
            ["Are childbirth classes covered?", "Does Acme pay for breastfeeding classes?", "Prenatal class reimbursement?"],
            "Will my plan reimburse a childbirth preparation course?",
            "Childbirth and breastfeeding classes are reimbursed up to $150 per pregnancy on every plan.",
        ),
        (
            [
                "Does buprenorphine need prior authorization?",
                "Is treatment for opioid addiction covered?",
                "Do I need approval for medication for opioid use disorder?",
            ],
            "Can I get Suboxone without waiting for an approval?",
            "Yes. Medication for opioid use disorder, such as buprenorphine, is covered and needs no prior authorization.",
        ),
        (
            ["How do I get my medical records?", "Can I have a copy of my claims history?", "Is there a fee for my records?"],
            "I want to see everything Acme has on file about my care. Can I?",
            "Yes. You can get a copy of your medical records and claims history free of charge within 30 days of asking.",
        ),
        (
            [
                "How long does a formulary exception take?",
                "How fast is a drug exception decided?",
                "When will I hear about my formulary exception?",
            ],
            "My doctor asked for an exception for a drug that's not on the formulary. How long will it take?",
            "Standard formulary exception requests are decided within 72 hours and urgent ones within 24 hours.",
        ),
        (
            ["How do I file a complaint?", "Can I file a grievance about my care?", "How long does Acme take to answer a complaint?"],
            "I had a bad experience with member services. Where do I complain?",
            "You can file a complaint (grievance) about the quality of care or service; complaints are answered within 30 days.",
        ),
    ]
    return out + g


def faq() -> tuple[list[dict], list[dict]]:
    def pair(qn: str, a: str) -> dict:
        return {"messages": [{"role": "user", "content": qn}, {"role": "assistant", "content": a}]}

    train, held = [], []
    for qs, heldout, answer in faq_facts():
        train += [pair(x, answer) for x in qs]
        held.append(pair(heldout, answer))
    rng = random.Random(2027)
    rng.shuffle(train)
    rng.shuffle(held)
    return train, held[:60]


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, fn in DOCS.items():
        (OUT / name).write_text(fn(), encoding="utf-8")
    write_pdf(OUT / "telehealth-and-nurse-line.pdf", telehealth_lines())
    with open(HERE / "questions.jsonl", "w", encoding="utf-8") as f:
        for q in questions():
            f.write(json.dumps(q) + "\n")
    train, held = faq()
    for fname, rows in (("faq.jsonl", train), ("faq-eval.jsonl", held)):
        with open(HERE / fname, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    print(f"wrote {len(DOCS) + 1} documents, {len(questions())} questions, {len(train)} FAQ pairs, {len(held)} held-out pairs")


if __name__ == "__main__":
    main()
