"""The labels: both catalogs complete and alike, every key a page asks for present, and the
language switch."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import get_args

from jinja2 import nodes

from gateway import disclosure, jobs
from gateway.console import i18n, navigation
from gateway.console.pages import TEMPLATES
from gateway.control import Role, incidents, pricing, products, quality, revenue_share, webhooks
from gateway.detection import RULES
from outbound_review.queue import Decision
from sandbox.catalog import Tag
from tests.gateway.api.conftest import World
from tests.gateway.console.conftest import Visitor

CONSOLE = Path(i18n.__file__).parent
STATIC_KEY = re.compile(r"""\bt\(\s*["']([a-z_]+(?:\.[a-z_0-9]+)+)["']""")
FLASH_KEY = re.compile(r"""["'](flash\.[a-z_]+)["']""")
KEY = re.compile(r"[a-z_]+(?:\.[a-z_0-9]+)+")
DYNAMIC = {
    "role": [str(r) for r in Role],
    "home.role": [str(r) for r in Role],
    "state": list(get_args(jobs.Status)),
    "decision": list(get_args(Decision)),
    "flash": list(get_args(Decision)),
    "outcome": ["pass", "review", "fail"],
    "tag": [str(t) for t in Tag],
    "level": ["1", "2", "3", "4"],
    "mode": ["whole", "domain", "scenario"],
    "category": ["public_welfare", "industry"],
    "grants.status": ["active", "revoked"],
    "scenario.status": ["applied", "approved", "rejected", "closed"],
    "signin.why": ["missing", "expired", "revoked", "signed_out"],
    "products.form": list(pricing.FORMS),
    "products.unit": list(pricing.UNITS),
    "products.status": list(get_args(products.Status)),
    "public.disclosure.outcome": [*disclosure.OUTCOMES, "in_progress"],
    "renewals.status": ["pending", "approved", "rejected"],
    "evaluations.outcome": ["pass", "rectify", "fail"],
    "quality.category": [str(c) for c in quality.Category],
    "quality.status": [str(s) for s in quality.Status],
    "incidents.severity": list(get_args(incidents.Severity)),
    "incidents.status": [str(s) for s in incidents.Status],
    "incidents.counts": [r.id for r in RULES],
    "incidents.per": [r.per for r in RULES],
    "webhooks.event": list(webhooks.EVENTS),
    "webhooks.status": list(get_args(webhooks.DeliveryStatus)),
    "shares.weighting": list(revenue_share.WEIGHTINGS),
    "shares.party": ["authority", "operator", "provider"],
}
"""Keys the pages build from a value: prefix → every value it can take."""


def _template_keys(name: str) -> set[str]:
    """The keys a template names: every dotted string in its expressions (``t("…")``'s, a
    table's header list, a macro's default) but the names of the templates it builds on."""
    source, _, _ = TEMPLATES.loader.get_source(TEMPLATES, name)
    strings = {c.value for c in TEMPLATES.parse(source).find_all(nodes.Const) if isinstance(c.value, str)}
    return {s for s in strings if KEY.fullmatch(s)} - set(TEMPLATES.list_templates())


def _fields(label: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(label) if name is not None}


def test_both_catalogs_hold_the_same_keys_with_the_same_placeholders() -> None:
    zh, en = i18n.CATALOGS["zh-CN"], i18n.CATALOGS["en"]
    assert set(zh) == set(en), set(zh) ^ set(en)
    for key in zh:
        assert _fields(zh[key]) == _fields(en[key]), key
        assert zh[key].strip() and en[key].strip(), key


def test_every_label_a_page_asks_for_exists_and_every_label_is_asked_for() -> None:
    code = [p.read_text(encoding="utf-8") for p in CONSOLE.glob("*.py") if not p.name.startswith("labels_")]
    wanted = {k for text in code for k in STATIC_KEY.findall(text) + FLASH_KEY.findall(text)}
    wanted |= {k for name in TEMPLATES.list_templates() for k in _template_keys(name)}
    wanted |= {key for keys in navigation.PAGES.values() for key in keys} | set(navigation.SECTIONS)
    wanted |= {f"{prefix}.{value}" for prefix, values in DYNAMIC.items() for value in values}
    for lang, catalog in i18n.CATALOGS.items():
        assert not wanted - set(catalog), (lang, sorted(wanted - set(catalog)))
        assert not set(catalog) - wanted, (lang, sorted(set(catalog) - wanted))


def test_chinese_is_the_default_and_english_a_click_away(world: World) -> None:
    visitor = Visitor(world).sign_in("reviewer")
    page = visitor.get("/console/reviews")
    assert '<html lang="zh-CN">' in page.text and "待审核结果" in page.text
    switched = visitor.get("/console/lang/en", params={"next": "/console/reviews"}, follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/console/reviews"
    cookie = switched.headers["set-cookie"]
    assert "vbx_lang=en" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = visitor.get("/console/reviews")
    assert '<html lang="en">' in page.text and "Results waiting for review" in page.text
    assert "待审核结果" not in page.text
    visitor.get("/console/lang/xx")  # an unknown language changes nothing
    assert '<html lang="en">' in visitor.get("/console/reviews").text
    visitor.get("/console/lang/zh-CN")
    assert '<html lang="zh-CN">' in visitor.get("/console/reviews").text
