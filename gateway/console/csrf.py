"""Cross-site request forgery defences for the console's forms.

Every POST must pass two independent checks, each refused with its rule:

- ``C-ORIGIN``: the request's ``Origin`` (or, without one, its ``Referer``) is this host.
  Browsers send ``Origin`` on every form post, so a post that carries neither is refused.
- ``C-CSRF``: the form's ``csrf`` field equals the session's secret (compared in constant
  time). Before sign-in there is no session: the sign-in form carries an HMAC of a random
  pre-session cookie under a key of this process (a signed double-submit), so another
  site cannot sign a browser in to an account of its choosing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request

from gateway.errors import Forbidden

FIELD = "csrf"
"""The hidden form field every POST form carries."""


class LoginGuard:
    """The signed double-submit of the sign-in form, under a key that lives as long as the process."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def seed(self) -> str:
        """A fresh value for the pre-session cookie."""
        return secrets.token_urlsafe(32)

    def field(self, seed: str) -> str:
        """What the sign-in form carries for the cookie value ``seed``."""
        return hmac.new(self._key, seed.encode("utf-8"), hashlib.sha256).hexdigest()

    def check(self, seed: str | None, form: FormData) -> None:
        """Refuse (``C-CSRF``) a sign-in post whose field does not match its cookie."""
        if not seed:
            raise Forbidden("C-CSRF", "the sign-in form has expired or cookies are off: open it again")
        check_token(self.field(seed), form)


def check_token(expected: str, form: FormData) -> None:
    """Refuse (``C-CSRF``) a form whose ``csrf`` field is missing or differs from ``expected``."""
    given = form.get(FIELD)
    if not isinstance(given, str) or not given:
        raise Forbidden("C-CSRF", "the form carries no CSRF token: reload the page and send it again")
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise Forbidden("C-CSRF", "the form's CSRF token does not belong to your session: reload the page")


def check_origin(request: Request) -> None:
    """Refuse (``C-ORIGIN``) a post that another site sent, or that does not say where it came from."""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    origin = request.headers.get("origin")
    if origin is None:
        referer = urlsplit(request.headers.get("referer", ""))
        origin = f"{referer.scheme}://{referer.netloc}" if referer.scheme and referer.netloc else None
    if origin is None:
        raise Forbidden("C-ORIGIN", "the post does not say which site sent it (no Origin or Referer)")
    if origin.lower() != own:
        raise Forbidden("C-ORIGIN", f"the post came from {origin[:100]}, not from this console")
