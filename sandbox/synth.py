"""A deterministic synthetic city: the five tables of ``sandbox.city`` as Parquet files.

Every column is drawn with whole-array numpy operations from one seed, so a million
residents take seconds and the same seed always gives the same city. The distributions
aim at the cases disclosure control has to handle: a handful of very large enterprises
dominate headcount and capital, rare industries leave small industry x district cells,
and identifiers are valid GB 11643 / GB 32100 codes whose region code and birth date
agree with the rest of the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# The check-character tables are deid's own, so generated codes validate by construction.
from deid.identifiers import ID_CHECK, ID_WEIGHTS, USCC_ALPHABET, USCC_WEIGHTS
from sandbox.city import CITY_COLUMNS, DISTRICTS, EDUCATION, GENDERS, INDUSTRIES, RECORD_TYPES
from sandbox.errors import SandboxError

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Days = npt.NDArray[np.datetime64]

MAX_ROWS = 10_000_000
"""Keeps the monthly tables' identifier columns well inside 32-bit Arrow string offsets."""

CITY_NAME = "滨海市"
# A prefecture code no real city uses, with one county-level code per entry of DISTRICTS.
REGION_CODES = ("459002", "459003", "459004", "459005", "459011", "459012", "459013", "459021")
DISTRICT_WEIGHTS = (0.20, 0.18, 0.15, 0.09, 0.13, 0.10, 0.09, 0.06)
_REGION_DIGITS = np.array([[int(digit) for digit in code] for code in REGION_CODES], dtype=np.int64)

_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "DATE": pa.date32(),
    "DOUBLE": pa.float64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
}
_DIGITS = "0123456789"
_USCC_CHECKS = "".join(USCC_ALPHABET[-residue % 31] for residue in range(31))
_REFERENCE_DAY = np.datetime64("2025-01-01")  # ages are counted at the start of the data year
_MONTHS = np.arange("2025-01", "2026-01", dtype="datetime64[M]").astype("datetime64[D]")

# Per-mille shares of the commonest surnames, after the national census ranking.
_SURNAMES = (
    ("王", 71), ("李", 70), ("张", 68), ("刘", 54), ("陈", 46), ("杨", 31), ("黄", 23), ("赵", 22),
    ("吴", 20), ("周", 19), ("徐", 15), ("孙", 15), ("马", 12), ("朱", 12), ("胡", 11), ("郭", 11),
    ("何", 10), ("高", 10), ("林", 10), ("罗", 9), ("郑", 9), ("梁", 8), ("谢", 7), ("宋", 6),
    ("唐", 6), ("许", 6), ("韩", 6), ("冯", 5), ("邓", 5), ("曹", 5), ("彭", 5), ("曾", 5),
    ("肖", 5), ("田", 5), ("董", 5), ("袁", 4), ("潘", 4), ("于", 4), ("蒋", 4), ("蔡", 4),
    ("余", 4), ("杜", 4), ("叶", 4), ("程", 4), ("苏", 3), ("魏", 3), ("吕", 3), ("丁", 3),
    ("任", 3), ("沈", 3), ("姚", 3), ("卢", 3), ("姜", 3), ("崔", 3), ("钟", 3), ("谭", 3),
    ("陆", 3), ("汪", 3), ("范", 2), ("金", 2), ("石", 2), ("廖", 2), ("贾", 2), ("夏", 2),
    ("韦", 2), ("付", 2), ("方", 2), ("白", 2), ("邹", 2), ("孟", 2), ("熊", 2), ("秦", 2),
    ("邱", 2), ("江", 2), ("尹", 2), ("薛", 2), ("段", 2), ("雷", 2), ("侯", 2), ("龙", 2),
    ("欧阳", 0.3), ("司马", 0.1), ("诸葛", 0.05),
)  # fmt: skip
# Men draw given-name characters from the first two pools, women from the last two.
_GIVEN_MALE = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙阳博"
_GIVEN_SHARED = "文建志海春晓晨雨子嘉思一天安林清"
_GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀英玲婷雪慧晶琳颖倩洁欣怡佳悦梦萱涵瑶璐"
_TWO_CHARACTER_GIVEN_NAMES = 0.7
_ROADS = (
    "建设路", "人民路", "解放路", "中山路", "文化路", "和平路", "新华路", "胜利路", "长江路", "黄河路",
    "学府路", "科技路", "滨江路", "湖滨路", "北山路", "工业大道", "兴业街", "幸福街", "花园路", "朝阳路",
)  # fmt: skip
_MOBILE_PREFIXES = (
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156, 157, 158, 159, 170,
    173, 175, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 191, 193, 195, 198, 199,
)  # fmt: skip

# Population weight by age (interpolated between knots): the two post-war booms and a
# narrow base, so there are many working-age adults and few centenarians.
_AGE_KNOTS = (
    (0, 0.7), (10, 0.9), (20, 1.0), (30, 1.35), (36, 1.3), (45, 1.1),
    (55, 1.3), (60, 1.1), (70, 0.8), (80, 0.35), (90, 0.08), (100, 0.005),
)  # fmt: skip
_EMPLOYMENT_KNOTS = (
    (0, 0.0), (17, 0.0), (18, 0.25), (22, 0.6), (25, 0.85), (50, 0.85),
    (55, 0.7), (60, 0.4), (65, 0.08), (75, 0.02), (100, 0.0),
)  # fmt: skip
_MALE_SHARE = 0.51
_ADULT_AGE = 18
# Younger cohorts stayed in school longer: shares of EDUCATION by age band (lower bounds).
_EDUCATION_BANDS = (0, 13, 16, 19, 23, 35, 50, 65)
_EDUCATION_SHARES = (
    (100, 0, 0, 0, 0),
    (10, 90, 0, 0, 0),
    (0, 40, 60, 0, 0),
    (0, 15, 35, 50, 0),
    (3, 20, 25, 42, 10),
    (6, 30, 27, 31, 6),
    (15, 40, 28, 15, 2),
    (40, 35, 17, 7, 1),
)
_HOUSEHOLD_WEIGHTS = (25, 30, 20, 13, 6, 3, 2, 1)  # sizes 1 to 8

# Enterprise mix, in the order of INDUSTRIES; mining and utilities are rare on purpose.
_INDUSTRY_WEIGHTS = (3, 0.4, 16, 1, 9, 25, 7, 10, 9, 3, 5, 8)
_INDUSTRY_WORDS = (
    "农业科技", "矿业", "机械制造", "能源", "建筑工程", "商贸",
    "物流", "餐饮管理", "信息技术", "投资管理", "置业", "社区服务",
)  # fmt: skip
_INDUSTRY_PAY = (0.8, 1.1, 1.0, 1.2, 1.0, 0.85, 0.95, 0.8, 1.6, 1.7, 1.2, 1.0)
# Industries cluster where land or policy suits them, which thins them out elsewhere.
_DISTRICT_AFFINITY = {
    ("agriculture", "郊县"): 8.0,
    ("agriculture", "北山区"): 3.0,
    ("mining", "郊县"): 10.0,
    ("mining", "北山区"): 5.0,
    ("manufacturing", "经开区"): 4.0,
    ("logistics", "经开区"): 2.0,
    ("it_services", "高新区"): 5.0,
    ("finance", "城东区"): 3.0,
}
_TRADE_FIRST = "华恒鑫宏瑞金永嘉远博天信海中润新东万立众泰盛德隆"
_TRADE_SECOND = "兴通源达丰盛安禾航创成川联泽锐方家德诚信远达利和"
_GIANT_SHARE = 0.002
_EDUCATION_PAY = (0.8, 0.9, 1.0, 1.3, 1.7)

_RECORD_WEIGHTS = (15, 40, 3, 42)  # in the order of RECORD_TYPES
_RECORD_MEDIANS = (50_000.0, 5_000.0, 200_000.0, 0.0)

# Monthly multipliers: air conditioning in summer and heating in winter.
_ELECTRICITY_SEASON = (1.2, 1.1, 0.9, 0.8, 0.85, 1.1, 1.5, 1.6, 1.1, 0.85, 0.9, 1.15)
_WATER_SEASON = (0.9, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.2, 1.05, 1.0, 0.9, 0.9)
_GAS_SEASON = (1.8, 1.7, 1.3, 1.0, 0.7, 0.5, 0.4, 0.4, 0.5, 0.8, 1.2, 1.6)
_GAS_CONNECTED = 0.8


@dataclass(frozen=True)
class _People:
    """The residents table plus the arrays the other tables are drawn from."""

    table: Any
    ids: Any
    age: Ints
    education: Ints
    household_size: Ints
    employed: Bools


@dataclass(frozen=True)
class _Firms:
    """The enterprises table plus the arrays the other tables are drawn from."""

    table: Any
    uscc: Any
    industry: Ints
    employees: Ints


def generate_city(rows: int, seed: int, out: Path) -> dict[str, int]:
    """Write the five city tables for ``rows`` residents into ``out`` as Parquet; return rows per table.

    The same ``rows`` and ``seed`` always give the same table contents.
    """
    if not 1 <= rows <= MAX_ROWS:
        raise SandboxError(f"rows must be between 1 and {MAX_ROWS:,}, got {rows:,}")
    if seed < 0:
        raise SandboxError(f"seed must be zero or positive, got {seed}")
    streams = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(5)]
    people = _residents(streams[0], rows)
    firms = _enterprises(streams[1], max(1, round(rows / 20)), people)
    tables = {
        "residents": people.table,
        "enterprises": firms.table,
        "social_insurance": _social_insurance(streams[2], people, firms),
        "utility_usage": _utility_usage(streams[3], people),
        "credit_records": _credit_records(streams[4], round(rows / 50), firms),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, out / f"{name}.parquet")
    return {name: int(table.num_rows) for name, table in tables.items()}


def _residents(rng: np.random.Generator, n: int) -> _People:
    age = rng.choice(101, size=n, p=_normalized(_by_age(_AGE_KNOTS)))
    # Enterprises need adult legal representatives, so even the tiniest city keeps one adult.
    age[np.argmax(age)] = max(int(age.max()), _ADULT_AGE)
    male = rng.random(n) < _MALE_SHARE
    district = _pick(rng, DISTRICT_WEIGHTS, n)
    birth = _REFERENCE_DAY - np.floor((age + rng.random(n)) * 365.2425).astype(np.int64)
    band = np.searchsorted(_EDUCATION_BANDS, age, side="right") - 1
    education = _conditional_pick(rng, np.asarray(_EDUCATION_SHARES, dtype=np.float64), band)
    household_size = _pick(rng, _HOUSEHOLD_WEIGHTS, n) + 1
    employed = rng.random(n) < _by_age(_EMPLOYMENT_KNOTS)[age]
    ids = _resident_ids(rng, district, birth, male)
    table = _table(
        "residents",
        ids,
        _names(rng, male),
        _strings(GENDERS).take(np.where(male, 0, 1)),
        birth,
        _strings(DISTRICTS).take(district),
        _addresses(rng, district),
        _mobiles(rng, n),
        _strings(EDUCATION).take(education),
        household_size,
        employed,
    )
    return _People(table, ids, age, education, household_size, employed)


def _resident_ids(rng: np.random.Generator, district: Ints, birth: Days, male: Bools) -> Any:
    """GB 11643 numbers: district region code, birth date, sequence (odd for men), check."""
    body = np.hstack(
        [
            _REGION_DIGITS[district],
            _digits(_yyyymmdd(birth), 8),
            _digits(_sequences(rng, district, birth, male), 3),
        ]
    )
    return _checked_codes(body, _DIGITS, ID_WEIGHTS, ID_CHECK)


def _sequences(rng: np.random.Generator, district: Ints, birth: Days, male: Bools) -> Ints:
    """Sequence numbers unique within each district, birth date and gender, odd for men.

    Each gender has 500 sequences per district and day; at MAX_ROWS the most crowded such
    cell holds under a hundred people, so ranks never wrap onto each other.
    """
    days = birth.astype(np.int64)
    cell = np.ravel_multi_index(
        (district, days - days.min(), male.astype(np.int64)), (len(DISTRICTS), int(np.ptp(days)) + 1, 2)
    )
    order = np.argsort(cell, kind="stable")
    sorted_cells = cell[order]
    first = np.r_[True, sorted_cells[1:] != sorted_cells[:-1]]
    group = np.cumsum(first) - 1
    rank = np.arange(cell.size) - np.flatnonzero(first)[group]
    # A random start per cell, so sequence numbers do not all begin at 000.
    slot = (rank + rng.integers(0, 500, size=int(group[-1]) + 1)[group]) % 500
    sequence = np.empty(cell.size, dtype=np.int64)
    sequence[order] = 2 * slot + male[order]
    return sequence


def _names(rng: np.random.Generator, male: Bools) -> Any:
    """Surname by national frequency, then one or two gender-leaning given-name characters."""
    n = male.size
    pool = _GIVEN_MALE + _GIVEN_SHARED + _GIVEN_FEMALE
    low = np.where(male, 0, len(_GIVEN_MALE))
    high = np.where(male, len(_GIVEN_MALE) + len(_GIVEN_SHARED), len(pool))
    two = rng.random(n) < _TWO_CHARACTER_GIVEN_NAMES
    # Index 0 of the second pool is the empty string: a one-character given name.
    second = np.where(two, rng.integers(low, high) + 1, 0)
    return pc.binary_join_element_wise(
        _strings(tuple(surname for surname, _ in _SURNAMES)).take(_pick(rng, [w for _, w in _SURNAMES], n)),
        _strings(tuple(pool)).take(rng.integers(low, high)),
        _strings(("", *pool)).take(second),
        "",
    )


def _addresses(rng: np.random.Generator, district: Ints) -> Any:
    n = district.size
    return pc.binary_join_element_wise(
        _strings(DISTRICTS).take(district),
        _strings(_ROADS).take(rng.integers(0, len(_ROADS), n)),
        pa.array(rng.integers(1, 400, n)).cast(pa.string()),
        "号",
        "",
    )


def _mobiles(rng: np.random.Generator, n: int) -> Any:
    prefix = np.asarray(_MOBILE_PREFIXES)[rng.integers(0, len(_MOBILE_PREFIXES), n)]
    body = np.hstack([_digits(prefix, 3), rng.integers(0, 10, (n, 8))])
    return _ascii_strings(_encode(body, _DIGITS))


def _enterprises(rng: np.random.Generator, count: int, people: _People) -> _Firms:
    industry = _pick(rng, _INDUSTRY_WEIGHTS, count)
    district = _conditional_pick(rng, _district_weights_by_industry(), industry)
    employees, capital = _enterprise_sizes(rng, count)
    uscc = _usccs(rng, district)
    adults = np.flatnonzero(people.age >= _ADULT_AGE)
    table = _table(
        "enterprises",
        uscc,
        _enterprise_names(rng, district, industry),
        _strings(INDUSTRIES).take(industry),
        _strings(DISTRICTS).take(district),
        capital,
        # Firms founded since 1990, more of them recently.
        _days_between(rng, "1990-01-01", "2024-12-31", count, recency=0.6),
        employees,
        people.ids.take(rng.choice(adults, size=count)),
    )
    return _Firms(table, uscc, industry, employees)


def _district_weights_by_industry() -> Floats:
    """One row of district weights per industry: the city's spread, bent by _DISTRICT_AFFINITY."""
    weights = np.tile(np.asarray(DISTRICT_WEIGHTS), (len(INDUSTRIES), 1))
    for (industry, district), factor in _DISTRICT_AFFINITY.items():
        weights[INDUSTRIES.index(industry), DISTRICTS.index(district)] *= factor
    return weights


def _enterprise_sizes(rng: np.random.Generator, count: int) -> tuple[Ints, Floats]:
    """Headcount and registered capital (10k CNY): lognormal, plus a few giants that dominate both."""
    scale = rng.normal(size=count)
    giant = rng.random(count) < _GIANT_SHARE
    headcount = np.where(giant, rng.integers(1_000, 5_001, count), np.floor(np.exp(1.8 + 1.2 * scale)))
    capital = np.exp(np.log(50.0) + scale + 0.8 * rng.normal(size=count)) * np.where(giant, 300.0, 1.0)
    return np.clip(headcount, 0, 5_000).astype(np.int64), np.round(np.clip(capital, 1.0, 100_000.0), 2)


def _usccs(rng: np.random.Generator, district: Ints) -> Any:
    """GB 32100 codes: 9 (market regulation) 1 (enterprise), region code, organization code, check."""
    count = district.size
    # Distinct organization codes make the codes unique.
    organization = rng.choice(31**9, size=count, replace=False)
    authority_and_type = np.broadcast_to(np.array([9, 1]), (count, 2))
    body = np.hstack([authority_and_type, _REGION_DIGITS[district], _digits(organization, 9, base=31)])
    return _checked_codes(body, USCC_ALPHABET, USCC_WEIGHTS, _USCC_CHECKS)


def _enterprise_names(rng: np.random.Generator, district: Ints, industry: Ints) -> Any:
    """City or district, a two-character trade name, the line of business, then 有限公司."""
    count = district.size
    prefix = np.where(rng.random(count) < 0.5, 0, district + 1)
    return pc.binary_join_element_wise(
        _strings((CITY_NAME, *DISTRICTS)).take(prefix),
        _strings(tuple(_TRADE_FIRST)).take(rng.integers(0, len(_TRADE_FIRST), count)),
        _strings(tuple(_TRADE_SECOND)).take(rng.integers(0, len(_TRADE_SECOND), count)),
        _strings(_INDUSTRY_WORDS).take(industry),
        "有限公司",
        "",
    )


def _social_insurance(rng: np.random.Generator, people: _People, firms: _Firms) -> Any:
    """Twelve monthly rows per employed resident, at an employer drawn by headcount."""
    workers = np.flatnonzero(people.employed)
    firm_count = firms.industry.size
    employer = rng.choice(firm_count, size=workers.size, p=_normalized(firms.employees + 1))
    salary = (
        6_500.0
        * np.exp(0.55 * rng.normal(size=workers.size))
        * np.asarray(_INDUSTRY_PAY)[firms.industry[employer]]
        * np.asarray(_EDUCATION_PAY)[people.education[workers]]
    )
    # Contribution bases are reset every July; about half the workers get a raise.
    raised = np.where(rng.random(workers.size) < 0.5, rng.uniform(0.0, 0.08, workers.size), 0.0)
    monthly = salary[:, None] * np.where(np.arange(12) >= 6, 1.0 + raised[:, None], 1.0)
    base = np.round(np.clip(monthly, 2_500.0, 50_000.0), 2).ravel()
    rate = np.repeat(rng.uniform(0.1, 0.3, firm_count)[employer], 12)
    return _table(
        "social_insurance",
        people.ids.take(np.repeat(workers, 12)),
        firms.uscc.take(np.repeat(employer, 12)),
        np.tile(_MONTHS, workers.size),
        base,
        np.round(base * rate, 2),
    )


def _utility_usage(rng: np.random.Generator, people: _People) -> Any:
    """Twelve monthly meter readings for each household, billed to an adult head."""
    adults = np.flatnonzero(people.age >= _ADULT_AGE)
    heads = min(adults.size, round(people.age.size / float(people.household_size.mean())))
    head = np.sort(rng.choice(adults, size=heads, replace=False))
    size = people.household_size[head][:, None].astype(np.float64)
    gas = np.where(rng.random((heads, 1)) < _GAS_CONNECTED, 6.0 + 4.0 * size, 0.0)
    return _table(
        "utility_usage",
        people.ids.take(np.repeat(head, 12)),
        np.tile(_MONTHS, heads),
        _seasonal(rng, 60.0 + 55.0 * size, _ELECTRICITY_SEASON, 2_000.0),
        _seasonal(rng, 2.5 + 3.0 * size, _WATER_SEASON, 100.0),
        _seasonal(rng, gas, _GAS_SEASON, 300.0),
    )


def _seasonal(rng: np.random.Generator, level: Floats, season: tuple[float, ...], upper: float) -> Floats:
    """Household level x month multiplier x lognormal noise, clipped to the declared bounds."""
    noise = np.exp(0.3 * rng.normal(size=(level.shape[0], 12)))
    usage: Floats = np.round(np.clip(level * np.asarray(season) * noise, 0.0, upper), 2)
    return usage.ravel()


def _credit_records(rng: np.random.Generator, count: int, firms: _Firms) -> Any:
    """Records for firms drawn by a heavy-tailed propensity, so some firms recur often."""
    firm_count = firms.industry.size
    firm = rng.choice(firm_count, size=count, p=_normalized(np.exp(rng.normal(size=firm_count))))
    kind = _pick(rng, _RECORD_WEIGHTS, count)
    amount = np.asarray(_RECORD_MEDIANS)[kind] * np.exp(1.5 * rng.normal(size=count))
    return _table(
        "credit_records",
        firms.uscc.take(firm),
        _strings(RECORD_TYPES).take(kind),
        np.round(np.clip(amount, 0.0, 10_000_000.0), 2),
        _days_between(rng, "2020-01-01", "2025-12-31", count),
    )


def _table(name: str, *columns: Any) -> Any:
    """An Arrow table whose names and types are exactly the declared CITY_COLUMNS."""
    fields = [pa.field(column.name, _ARROW_TYPES[column.type]) for column in CITY_COLUMNS[name]]
    arrays = [pa.array(values).cast(field.type) for values, field in zip(columns, fields, strict=True)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _checked_codes(body: Ints, symbols: str, weights: tuple[int, ...], checks: str) -> Any:
    """Codes from symbol values, with the check character at index (weighted sum mod len(checks))."""
    check = (body @ np.asarray(weights, dtype=np.int64)) % len(checks)
    return _ascii_strings(np.column_stack([_encode(body, symbols), _encode(check, checks)]))


def _encode(values: Ints, symbols: str) -> npt.NDArray[np.uint8]:
    return np.frombuffer(symbols.encode("ascii"), dtype=np.uint8)[values]


def _ascii_strings(codes: npt.NDArray[np.uint8]) -> Any:
    """One Arrow string per row of an ASCII byte matrix, without a Python object per row."""
    count, width = codes.shape
    offsets = np.arange(0, (count + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(codes)
    return pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _digits(values: Ints, width: int, base: int = 10) -> Ints:
    """The ``width`` least significant base-``base`` digits of each value, most significant first."""
    return (values[:, None] // base ** np.arange(width - 1, -1, -1, dtype=np.int64)) % base


def _yyyymmdd(days: Days) -> Ints:
    years = days.astype("datetime64[Y]")
    months = days.astype("datetime64[M]")
    year = years.astype(np.int64) + 1970
    month = (months - years).astype(np.int64) + 1
    day = (days - months).astype(np.int64) + 1
    packed: Ints = year * 10_000 + month * 100 + day
    return packed


def _days_between(rng: np.random.Generator, first: str, last: str, count: int, recency: float = 1.0) -> Days:
    """Dates from ``first`` to ``last``; ``recency`` below 1 leans them towards ``last``."""
    start = np.datetime64(first, "D")
    span = (np.datetime64(last, "D") - start).astype(np.int64) + 1
    return start + np.floor(span * rng.random(count) ** recency).astype(np.int64)


def _by_age(knots: tuple[tuple[int, float], ...]) -> Floats:
    """A value for every age 0 to 100, interpolated between (age, value) knots."""
    ages, values = zip(*knots, strict=True)
    per_age: Floats = np.interp(np.arange(101), ages, values)
    return per_age


def _pick(rng: np.random.Generator, weights: Sequence[float], count: int) -> Ints:
    return rng.choice(len(weights), size=count, p=_normalized(weights))


def _conditional_pick(rng: np.random.Generator, weights: Floats, rows: Ints) -> Ints:
    """For each entry of ``rows``, a column index drawn with that row of ``weights``."""
    cumulative = np.cumsum(weights, axis=1)
    cumulative /= cumulative[:, -1:]
    passed: Ints = (rng.random(rows.size)[:, None] >= cumulative[rows]).sum(axis=1)
    return passed


def _normalized(weights: npt.ArrayLike) -> Floats:
    values = np.asarray(weights, dtype=np.float64)
    return values / float(values.sum())


def _strings(values: tuple[str, ...]) -> Any:
    return pa.array(values, type=pa.string())
