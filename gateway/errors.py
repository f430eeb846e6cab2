"""Errors the gateway raises, each with an HTTP status and a stable rule id.

::

    VeilboxError (ledger.errors)
    └── GatewayError            anything the gateway refuses or cannot do (400)
        ├── Unauthenticated         no valid token was presented (401)
        ├── Forbidden               the caller is known but may not do this (403)
        ├── NotFound                nothing by that id is visible to the caller (404)
        ├── Conflict                the object's state or an existing name forbids it (409)
        ├── InvalidRequest          a field of the request is unusable (422)
        └── StoreError              the control-plane database failed or is too new (503)

Rule ids, stable and documented here; ``exc.rule`` carries one of them:

==================  ================  =========================================================
rule                error             meaning
==================  ================  =========================================================
``G-TOKEN``         Unauthenticated   the token is unknown, revoked or expired, or its user is
                                      deactivated
``G-ROLE``          Forbidden         the caller's role (or organisation) may not do this
``G-TENANT``        NotFound          no such object among those the caller may see: a missing
                                      object and another tenant's look the same, so neither
                                      the id nor the rule reveals that it exists
``G-AUTHORIZATION`` Forbidden         no active, started, unexpired authorization of the
                                      operator covers the datasets
``G-SCENARIO``      Forbidden         the scenario is not approved, or its term has ended
``G-EVALUATION``    Conflict          the year's evaluation is already final, or already re-evaluated
``G-RENEWAL``       Forbidden         outside the renewal window, or an authorization no longer
                                      in force; Conflict: an application already pending or decided
``G-SUSPENDED``     Forbidden         the caller's operator is suspended by the authority: every
                                      request of its users is refused until it is reinstated
``G-STATE``         Conflict          the object is no longer in a state that allows this
                                      (already decided, already revoked, already initialised)
``G-EXISTS``        Conflict          an organisation of that name exists
``G-INPUT``         InvalidRequest    a field is missing, malformed or out of range
``G-NARROW``        InvalidRequest    a scenario's column narrowing would loosen a catalog tag
``G-CATEGORY``      InvalidRequest    a product's category does not fit: an industry product
                                      under a public-welfare authorization, or a price on a
                                      public-welfare product (which is free)
``G-CAP``           InvalidRequest    a price above the product's cap (上限收费标准), or no cap
                                      set for its form and unit; as a job rule, a charge
                                      refused because the price is now above the cap
``G-REVENUE``       (job rule)        a charge refused because it would take the
                                      authorization's yearly total above its maximum permitted
                                      revenue (最高准许收入), or none is set for the year
``G-PRODUCT``       (job rule)        the job's product is suspended by the authority
``G-SCHEMA``        StoreError        the database was written by a newer Veilbox
``G-STORE``         StoreError        the database refused a read or write, or a stored charge,
                                      meter or issued document no longer has its recorded hash
``G-REVOKED``       (job rule)        stored on a job closed because the authorization it
                                      ran under was revoked or the operator exited
==================  ================  =========================================================
"""

from __future__ import annotations

from typing import ClassVar

from ledger.errors import VeilboxError


class GatewayError(VeilboxError):
    """Root of the gateway's errors: ``status`` is the HTTP status, ``rule`` the rule id."""

    status: ClassVar[int] = 400

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


class Unauthenticated(GatewayError):
    """No valid token: present one, or ask for a new one."""

    status = 401


class Forbidden(GatewayError):
    """The caller is authenticated but its role, tenant or authorization does not allow this."""

    status = 403


class NotFound(GatewayError):
    """Nothing by that id is visible to the caller (whether or not it exists elsewhere)."""

    status = 404


class Conflict(GatewayError):
    """The object's current state, or an existing one, forbids the change."""

    status = 409


class InvalidRequest(GatewayError):
    """A field of the request is unusable; the message names it."""

    status = 422


class StoreError(GatewayError):
    """The control-plane database failed or was written by a newer Veilbox."""

    status = 503
