"""The facts of the (synthetic) Acme Health 2027 plans, in one place.

``build_corpus.py`` writes the policy documents, the retrieval question set and the FAQ
pairs from these numbers, so every file says the same thing.
"""

from __future__ import annotations

PLAN_YEAR = 2027
PHONE = "1-800-555-0142"
HOURS = "Monday to Friday, 8 a.m. to 8 p.m., and Saturday, 9 a.m. to 1 p.m. (Central Time)"
NURSE_LINE = "1-800-555-0177"

PLANS = {
    "bronze": {
        "name": "Bronze",
        "network": "Acme Select",
        "network_type": "EPO",
        "premium": "$289",
        "deductible": "$6,500",
        "deductible_family": "$13,000",
        "oon_deductible": None,
        "oop_max": "$9,200",
        "oop_max_family": "$18,400",
        "coinsurance": "40%",
        "oon_coinsurance": None,
        "pcp": "$50",
        "specialist": "$100",
        "urgent_care": "$75",
        "er": "$500",
        "telehealth": "$25",
        "pt_visits": 12,
        "chiro_visits": 0,
        "mental_health_visit": "$50",
        "referral": True,
        "generic": "$15",
        "preferred_brand": "$60",
        "non_preferred": "$120",
        "specialty": "40% up to $500",
        "inpatient": "40% after the deductible",
        "delivery": "40% after the deductible",
        "eye_exam": None,
        "eyewear": None,
        "travel_vaccines": False,
        "evacuation": None,
        "hearing_aids": None,
        "infertility": "diagnostic testing only",
        "doula": None,
    },
    "silver": {
        "name": "Silver",
        "network": "Acme Choice",
        "network_type": "PPO",
        "premium": "$412",
        "deductible": "$3,000",
        "deductible_family": "$6,000",
        "oon_deductible": "$6,000",
        "oop_max": "$7,500",
        "oop_max_family": "$15,000",
        "coinsurance": "30%",
        "oon_coinsurance": "50%",
        "pcp": "$30",
        "specialist": "$60",
        "urgent_care": "$50",
        "er": "$350",
        "telehealth": "$10",
        "pt_visits": 16,
        "chiro_visits": 12,
        "mental_health_visit": "$30",
        "referral": False,
        "generic": "$10",
        "preferred_brand": "$40",
        "non_preferred": "$80",
        "specialty": "30% up to $350",
        "inpatient": "30% after the deductible",
        "delivery": "30% after the deductible",
        "eye_exam": "$20",
        "eyewear": None,
        "travel_vaccines": True,
        "evacuation": None,
        "hearing_aids": None,
        "infertility": "diagnostic testing and up to 3 cycles of ovulation induction",
        "doula": None,
    },
    "gold": {
        "name": "Gold",
        "network": "Acme Choice",
        "network_type": "PPO",
        "premium": "$568",
        "deductible": "$500",
        "deductible_family": "$1,000",
        "oon_deductible": "$1,500",
        "oop_max": "$4,000",
        "oop_max_family": "$8,000",
        "coinsurance": "10%",
        "oon_coinsurance": "30%",
        "pcp": "$15",
        "specialist": "$35",
        "urgent_care": "$25",
        "er": "$150",
        "telehealth": "$0",
        "pt_visits": 20,
        "chiro_visits": 20,
        "mental_health_visit": "$15",
        "referral": False,
        "generic": "$5",
        "preferred_brand": "$25",
        "non_preferred": "$50",
        "specialty": "20% up to $250",
        "inpatient": "a $250 copay per admission, then 10% after the deductible",
        "delivery": "a $250 copay per admission, then 10% after the deductible",
        "eye_exam": "$0",
        "eyewear": "$150",
        "travel_vaccines": True,
        "evacuation": "$50,000",
        "hearing_aids": "$1,500 per ear every 36 months",
        "infertility": "diagnostic testing, ovulation induction and up to 2 IVF cycles per lifetime",
        "doula": "$1,000",
    },
}

PRIOR_AUTH = [
    "planned (non-emergency) hospital admissions",
    "MRI, CT and PET scans",
    "outpatient surgery in a hospital or surgical center",
    "specialty drugs (Tier 4)",
    "home health care and skilled nursing facility stays",
    "durable medical equipment that costs more than $500",
    "residential treatment for mental health or substance use",
    "genetic testing",
    "bariatric surgery",
]
PRIOR_AUTH_STANDARD_DAYS = 15
PRIOR_AUTH_URGENT_HOURS = 72
EMERGENCY_NOTICE_HOURS = 48
CLAIM_FILING_DAYS = 180
CLAIM_PROCESSING_DAYS = 30
APPEAL_FILING_DAYS = 180
APPEAL_PRE_SERVICE_DAYS = 30
APPEAL_POST_SERVICE_DAYS = 60
APPEAL_URGENT_HOURS = 72
EXTERNAL_REVIEW_MONTHS = 4
OPEN_ENROLLMENT = "November 1 to December 15"
SPECIAL_ENROLLMENT_DAYS = 60
NEWBORN_DAYS = 30
MAIL_ORDER_SUPPLY = 90
