"""The synthetic city's five tables: column types, tags, bounds and join domains.

These are the declarations a provider makes when it ingests the city (the demo, tests and
benchmarks all use them). Identifiers share the join domain ``person`` (resident IDs) or
``enterprise`` (unified social credit codes), so pseudonyms join across tables.
"""

from __future__ import annotations

from sandbox.catalog import Column, Tag

DISTRICTS = ("城东区", "城西区", "南湖区", "北山区", "高新区", "经开区", "滨江区", "郊县")
EDUCATION = ("primary", "junior", "senior", "college", "postgraduate")
INDUSTRIES = (
    "agriculture", "mining", "manufacturing", "utilities", "construction", "retail",
    "logistics", "hospitality", "it_services", "finance", "real_estate", "public_services",
)  # fmt: skip
RECORD_TYPES = ("tax_arrears", "admin_penalty", "court_judgment", "honor")
GENDERS = ("M", "F")

ID, QI, DIM, MEA, HID = Tag.IDENTIFIER, Tag.QUASI_IDENTIFIER, Tag.DIMENSION, Tag.MEASURE, Tag.HIDDEN

CITY_COLUMNS: dict[str, tuple[Column, ...]] = {
    "residents": (
        Column("resident_id", "VARCHAR", ID, join_domain="person", entity="CN_RESIDENT_ID"),
        Column("name", "VARCHAR", HID, entity="CN_NAME"),
        Column("gender", "VARCHAR", DIM, domain=GENDERS),
        Column("birth_date", "DATE", QI),
        Column("district", "VARCHAR", DIM, domain=DISTRICTS),
        Column("address", "VARCHAR", HID, entity="CN_ADDRESS"),
        Column("phone", "VARCHAR", HID, entity="CN_MOBILE"),
        Column("education", "VARCHAR", DIM, domain=EDUCATION),
        Column("household_size", "INTEGER", MEA, lower=1, upper=10),
        Column("employed", "BOOLEAN", DIM),
    ),
    "enterprises": (
        Column("uscc", "VARCHAR", ID, join_domain="enterprise", entity="CN_USCC"),
        Column("enterprise_name", "VARCHAR", HID),
        Column("industry", "VARCHAR", DIM, domain=INDUSTRIES),
        Column("district", "VARCHAR", DIM, domain=DISTRICTS),
        Column("registered_capital", "DOUBLE", MEA, lower=0, upper=100_000),
        Column("established_date", "DATE", QI),
        Column("employee_count", "INTEGER", MEA, lower=0, upper=5_000),
        Column("legal_rep_id", "VARCHAR", ID, join_domain="person", entity="CN_RESIDENT_ID"),
    ),
    "social_insurance": (
        Column("resident_id", "VARCHAR", ID, join_domain="person", entity="CN_RESIDENT_ID"),
        Column("employer_uscc", "VARCHAR", ID, join_domain="enterprise", entity="CN_USCC"),
        Column("month", "DATE", DIM),
        Column("base_salary", "DOUBLE", MEA, lower=0, upper=50_000),
        Column("contribution", "DOUBLE", MEA, lower=0, upper=15_000),
    ),
    "utility_usage": (
        Column("resident_id", "VARCHAR", ID, join_domain="person", entity="CN_RESIDENT_ID"),
        Column("month", "DATE", DIM),
        Column("electricity_kwh", "DOUBLE", MEA, lower=0, upper=2_000),
        Column("water_m3", "DOUBLE", MEA, lower=0, upper=100),
        Column("gas_m3", "DOUBLE", MEA, lower=0, upper=300),
    ),
    "credit_records": (
        Column("uscc", "VARCHAR", ID, join_domain="enterprise", entity="CN_USCC"),
        Column("record_type", "VARCHAR", DIM, domain=RECORD_TYPES),
        Column("amount", "DOUBLE", MEA, lower=0, upper=10_000_000),
        Column("record_date", "DATE", QI),
    ),
}

CITY_PROVIDERS = {
    "residents": "civil_affairs_bureau",
    "enterprises": "market_regulation_bureau",
    "social_insurance": "human_resources_bureau",
    "utility_usage": "utilities_group",
    "credit_records": "development_reform_commission",
}
CITY_LEVELS = {
    "residents": 3,
    "enterprises": 2,
    "social_insurance": 3,
    "utility_usage": 2,
    "credit_records": 2,
}
