"""The console's navigation: every page a signed-in role may open, grouped into labelled
sections once there are too many to read at a glance.

A role's navigation lists exactly the pages its services let it open (a test opens every
page as every role and holds :data:`NAV` to what answers), so nothing a role may see is
hidden and no link leads to a refusal. The links only save clicks: each page's route still
calls the service functions that check the role.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.control import Role

SECTIONS = (
    "nav.group.reviews",
    "nav.group.data",
    "nav.group.operations",
    "nav.group.oversight",
    "nav.group.audit",
)
"""The sections' labels, in the order they are shown."""
PAGES: Mapping[str, tuple[str, str]] = {
    "reviews": ("nav.queue", "nav.group.reviews"),
    "reviews/history": ("nav.history", "nav.group.reviews"),
    "catalog": ("nav.catalog", "nav.group.data"),
    "authority/datasets": ("nav.datasets", "nav.group.data"),
    "authority/authorizations": ("nav.authorizations", "nav.group.data"),
    "authority/scenarios": ("nav.scenarios", "nav.group.data"),
    "authority/budgets": ("nav.budgets", "nav.group.data"),
    "renewals": ("nav.renewals", "nav.group.data"),
    "playground": ("nav.playground", "nav.group.operations"),
    "jobs": ("nav.jobs", "nav.group.operations"),
    "products": ("nav.products", "nav.group.operations"),
    "price-caps": ("nav.caps", "nav.group.operations"),
    "meters": ("nav.meters", "nav.group.operations"),
    "statements": ("nav.statements", "nav.group.operations"),
    "revenue-limits": ("nav.limits", "nav.group.operations"),
    "revenue-share": ("nav.shares", "nav.group.operations"),
    "evaluations": ("nav.evaluations", "nav.group.oversight"),
    "incidents": ("nav.incidents", "nav.group.oversight"),
    "quality": ("nav.quality", "nav.group.oversight"),
    "webhooks": ("nav.webhooks", "nav.group.oversight"),
    "authority/disclosures": ("nav.disclosures", "nav.group.oversight"),
    "audit/ledger": ("nav.ledger", "nav.group.audit"),
    "audit/checkpoint": ("nav.proofs", "nav.group.audit"),
    "audit/verify": ("nav.verify", "nav.group.audit"),
    "audit/activity": ("nav.activity", "nav.group.audit"),
}
"""Every page a navigation may link to, by its path under the console's prefix: its label
and its section's, in the order they are shown."""

# What reviewers, tenants and overseers all read: the datasets, and the scenarios with their budgets.
_DATA = frozenset({"catalog", "authority/datasets", "authority/scenarios", "authority/budgets"})
# What an operator's users read of their own tenant (the services filter the rows).
_TENANT = _DATA | {
    "authority/authorizations",
    "renewals",
    "jobs",
    "products",
    "price-caps",
    "meters",
    "quality",
}
# What the authority and auditors read across every tenant.
_OVERSEER = _TENANT | {
    "statements",
    "revenue-limits",
    "revenue-share",
    "evaluations",
    "incidents",
    "webhooks",
}
_AUDIT = frozenset({"audit/ledger", "audit/checkpoint", "audit/verify", "audit/activity"})
NAV: Mapping[Role, frozenset[str]] = {
    Role.REVIEWER: _DATA | {"reviews", "reviews/history", "price-caps"},
    Role.AUDITOR: _OVERSEER | _AUDIT,
    Role.AUTHORITY: _OVERSEER | _AUDIT | {"authority/disclosures"},
    Role.OPERATOR: _TENANT | {"playground", "statements", "revenue-limits", "evaluations", "incidents"},
    Role.DEVELOPER: _TENANT | {"playground"},
    Role.PROVIDER: frozenset({"catalog", "authority/datasets", "price-caps", "quality", "revenue-share"}),
}
"""The pages each role's navigation links to."""
FLAT_UP_TO = 7
"""A navigation of this many links or fewer is one list; a longer one is grouped."""


@dataclass(frozen=True)
class Link:
    """A link of the navigation: where it goes, its label's key, and whether it is the page
    being looked at (or the list a page being looked at belongs to)."""

    href: str
    label: str
    current: bool


@dataclass(frozen=True)
class Section:
    """Links under one label; a navigation short enough to stay flat is one section without."""

    label: str | None
    links: tuple[Link, ...]

    @property
    def current(self) -> bool:
        """Whether the page being looked at is one of this section's."""
        return any(link.current for link in self.links)


def navigation(role: Role, prefix: str, here: str) -> tuple[Section, ...]:
    """The navigation of ``role`` on the page at path ``here``, its links under ``prefix``.

    >>> [s.label for s in navigation(Role.AUTHORITY, "/console", "/console/")][:2]
    ['nav.group.data', 'nav.group.operations']
    >>> (flat,) = navigation(Role.REVIEWER, "/console", "/console/reviews/history")
    >>> flat.label, [link.href for link in flat.links if link.current]
    (None, ['/console/reviews/history'])
    """
    shown = [path for path in PAGES if path in NAV.get(role, ())]
    # The longest link the path lies under is the current one: history, not the queue above it.
    under = [path for path in shown if here == f"{prefix}/{path}" or here.startswith(f"{prefix}/{path}/")]
    current = max(under, key=len, default=None)
    links = {path: Link(f"{prefix}/{path}", PAGES[path][0], path == current) for path in shown}
    if len(links) <= FLAT_UP_TO:
        return (Section(None, tuple(links.values())),) if links else ()
    grouped = (Section(s, tuple(link for p, link in links.items() if PAGES[p][1] == s)) for s in SECTIONS)
    return tuple(section for section in grouped if section.links)
