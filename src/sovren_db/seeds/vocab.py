"""Precomputed vocabularies: seeded values are picked from these, never generated per field.

Weighted choices are lists with repeated entries (picked uniformly). Every
word is safe in COPY text (no tab, newline or backslash) and in JSON without
escaping (no quote); ``tests/seeds`` checks it. Domains are the ones reserved
for examples (RFC 2606), addresses the IPv6 documentation prefix: seeded data
never names a real mailbox or host. ``SKILLS`` has a prime length (see
:meth:`.draws.Draws.distinct`).
"""

from __future__ import annotations

FIRST_NAMES = (
    "aaliyah", "abdul", "ada", "adrian", "aiko", "alba", "alejandro", "amara", "amir", "ana", "anders", "anya",
    "arjun", "astrid", "ayesha", "bao", "beatriz", "bilal", "bjorn", "camila", "carlos", "chen", "chiara",
    "chloe", "dalia", "daniel", "dario", "deepa", "diego", "dmitri", "elena", "elif", "emeka", "emma", "enzo",
    "erik", "esther", "fatima", "felix", "fiona", "freya", "gabriel", "giulia", "hana", "hannah", "hassan",
    "helga", "hiro", "ian", "ibrahim", "ines", "ingrid", "isaac", "ivan", "jamal", "jana", "javier", "jin",
    "joao", "jonas", "julia", "kai", "kamala", "karim", "kate", "kenji", "khadija", "kofi", "lars", "layla",
    "lea", "leon", "liam", "lina", "lucas", "luis", "maja", "malik", "marco", "maria", "mateo", "mei", "mia",
    "mohammed", "nadia", "naomi", "nia", "nikolai", "noah", "nora", "olga", "omar", "oscar", "paolo", "priya",
    "rafael", "rania", "ravi", "rosa", "sami", "sara", "sean", "sofia", "sven", "tariq", "tomas", "uma",
    "valentina", "victor", "wei", "yara", "yusuf", "zainab", "zara", "zoe",
)

LAST_NAMES = (
    "abadi", "acheampong", "adeyemi", "alvarez", "andersen", "bauer", "becker", "bianchi", "costa", "dasilva",
    "dubois", "eriksson", "fernandez", "fischer", "garcia", "gonzalez", "gupta", "hansen", "hashemi", "hoffmann",
    "horvat", "ibrahim", "ito", "jansen", "jensen", "johansson", "kaur", "khan", "kim", "kowalski", "kumar",
    "larsen", "laurent", "lee", "lindqvist", "lopez", "martin", "meyer", "moreau", "muller", "nakamura",
    "nguyen", "nielsen", "novak", "okafor", "oliveira", "omar", "park", "patel", "perez", "petrov", "popescu",
    "rahman", "ricci", "rossi", "santos", "sato", "schmidt", "schneider", "silva", "singh", "smith", "suzuki",
    "tanaka", "torres", "wagner", "wang", "weber", "wilson", "wong", "yamamoto", "yilmaz", "zhang", "zimmermann",
)

# Display names of executive personas (MongoDB and Redis only: any Unicode is fine there).
EXECUTIVE_NAMES = (
    "Ada Sterling", "Amara Okonkwo", "Björn Halvorsen", "Camille Laurent", "Chen Wei", "Dalia Haddad",
    "Elena Marchetti", "Farid Nazari", "Greta Lindqvist", "Hiro Tanaka", "Ines Carvalho", "Jonas Weber",
    "Kavya Raman", "Leila Mansour", "Marcus Reid", "Noor Siddiqui", "Olu Adebayo", "Priya Nair",
    "Rafael Domínguez", "Sofia Kowalczyk", "Tomás Ortega", "Uma Krishnan", "Valentin Petrov", "Yuki Mori",
    "Zoë Whitfield",
)

EXECUTIVE_ROLES = (
    "Chief Strategy Officer", "Chief Financial Officer", "Chief Operating Officer", "Chief Marketing Officer",
    "Chief Technology Officer", "Chief Legal Officer", "Chief People Officer", "Chief Revenue Officer",
    "Chief Product Officer", "Chief Risk Officer", "Head of Negotiations", "Head of Investor Relations",
)

SKILLS = (  # 37 entries: a prime
    "negotiation", "forecasting", "budgeting", "fundraising", "hiring", "pricing", "market-analysis",
    "risk-assessment", "compliance", "contract-review", "due-diligence", "crisis-management", "public-speaking",
    "investor-updates", "board-reporting", "cash-flow", "supply-chain", "vendor-selection", "brand-strategy",
    "growth-marketing", "sales-coaching", "partnerships", "mergers", "product-roadmaps", "okr-planning",
    "scenario-planning", "cost-reduction", "tax-planning", "data-analysis", "talent-retention",
    "change-management", "customer-success", "competitive-intelligence", "regulatory-affairs", "cybersecurity",
    "esg-reporting", "localization",
)

VOICES = ("aria", "basalt", "cedar", "dune", "ember", "fjord", "granite", "harbor", "iris", "juniper")

DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "corp.example.org")

REGIONS = ("eu",) * 11 + ("us",) * 9

TIERS = ("pro",) * 6 + ("business",) * 3 + ("enterprise",)
TIER_PRICE_CENTS = {"free": 0, "pro": 2900, "business": 9900, "enterprise": 49900}

SUBSCRIPTION_STATUSES = ("active",) * 14 + ("trialing",) * 2 + ("past_due",) * 1 + ("cancelled",) * 3
TRANSACTION_STATUSES = ("succeeded",) * 17 + ("pending",) + ("failed",) + ("refunded",)
PAID_STATUSES = frozenset({"succeeded", "refunded"})

PROVIDERS = ("stripe",) * 5 + ("adyen",) * 3 + ("braintree",) + ("paypal",)
CARD_LAST4 = ("4242", "4444", "0005", "1881", "5100", "8431", "0019", "3220", "6789", "1117", "9424", "2500")

OPERATION_KINDS = (
    "forecast", "negotiation_plan", "market_entry", "pricing_review", "hiring_plan", "budget_review",
    "risk_assessment", "board_briefing", "vendor_selection", "investor_update",
)
HORIZONS = (7, 14, 30, 90, 180, 365)
RECOMMENDATIONS = (
    "proceed", "proceed with conditions", "defer one quarter", "renegotiate terms", "run a pilot first",
    "decline", "escalate to the board", "gather more data",
)

SCENARIOS = (
    "Enter the DACH market with a partner-led sales motion",
    "Raise prices by 8 percent for new customers only",
    "Renegotiate the cloud contract before renewal",
    "Hire a regional sales lead for the Nordics",
    "Delay the product launch by six weeks to fix onboarding",
    "Acquire a smaller competitor with an overlapping customer base",
    "Cut marketing spend by 15 percent and shift to referrals",
    "Open a second warehouse on the east coast",
    "Switch the payment provider to lower fees",
    "Introduce an annual plan with two months free",
    "Move support to follow-the-sun coverage",
    "Spin off the analytics add-on as its own product",
    "Prepare a bridge round of six months of runway",
)
SIMULATION_STATUSES = ("completed",) * 7 + ("running",) + ("queued",) + ("failed",)

ANALYTICS_KINDS = (
    "usage.daily", "usage.weekly", "revenue.cohort", "funnel.signup", "churn.risk", "forecast.cashflow",
    "executives.engagement", "operations.latency",
)

COMMUNICATION_STATUSES = ("delivered",) * 16 + ("sent",) * 3 + ("failed",)
MESSAGES = (
    "Quick update: the board deck is ready for your review.",
    "I have drafted the negotiation brief for Thursday.",
    "The cash-flow forecast for next quarter is attached.",
    "Reminder: investor update due on Friday.",
    "Our pricing review suggests a tiered model; details inside.",
    "The vendor shortlist is down to three candidates.",
    "Hiring plan approved for two engineers and one designer.",
    "Risk assessment complete: two items need your sign-off.",
    "Scenario results are in and the recommendation is to proceed.",
    "Can we move the strategy session to next Tuesday?",
    "The partnership term sheet has been countersigned.",
    "Weekly metrics: signups up 4 percent, churn flat.",
)
DEAD_LETTER_REASONS = ("mailbox unavailable", "recipient rejected", "rate limited by provider", "timeout")
DEVICE_KINDS = ("web", "ios", "android", "desktop")

# Generic words for columns the seed knows nothing about (labels, codes, tags).
WORDS = (
    "alpha", "amber", "anchor", "apex", "atlas", "aurora", "beacon", "birch", "bolt", "cedar", "cobalt", "comet",
    "coral", "delta", "ember", "falcon", "fern", "flint", "gamma", "garnet", "harbor", "helix", "indigo", "iris",
    "jade", "juniper", "kestrel", "lagoon", "lumen", "maple", "meadow", "nimbus", "nova", "onyx", "opal", "orbit",
    "pebble", "prism", "quartz", "quill", "raven", "ridge", "sable", "sierra", "spruce", "summit", "tundra",
    "umber", "vertex", "willow", "zenith", "zephyr",
)
COMPANY_KINDS = ("Ltd", "GmbH", "Inc", "SA", "AB", "Labs", "Partners", "Group")
CURRENCY_CODES = ("EUR",) * 5 + ("USD",) * 5 + ("GBP",) * 2 + ("CHF", "SEK", "CAD", "JPY")
COUNTRIES = ("DE", "FR", "ES", "IT", "NL", "SE", "PL", "US", "CA", "GB", "CH", "JP", "BR", "IN")
