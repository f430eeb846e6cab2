"""The console's labels in Simplified Chinese (the default) and English.

Every label a page shows comes from :data:`CATALOGS` by key; both catalogs hold the same
keys (a test checks). The language is the ``vbx_lang`` cookie's, set by the switch in the
page header; messages from the services (refusals and their reasons) stay as the services
word them, in English, with their rule ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request

from gateway.console.labels_en import EN
from gateway.console.labels_zh import ZH

DEFAULT = "zh-CN"
CATALOGS: Mapping[str, Mapping[str, str]] = {"zh-CN": ZH, "en": EN}
LANGUAGES = (("zh-CN", "中文"), ("en", "English"))
COOKIE = "vbx_lang"


def language(request: Request) -> str:
    """The request's language: its cookie's if that is one of ours, else the default."""
    chosen = request.cookies.get(COOKIE, DEFAULT)
    return chosen if chosen in CATALOGS else DEFAULT


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **values)``: the label of ``key`` in ``lang`` with ``values`` filled in."""
    catalog = CATALOGS[lang]

    def t(key: str, **values: Any) -> str:
        label = catalog[key]
        return label.format(**values) if values else label

    return t
