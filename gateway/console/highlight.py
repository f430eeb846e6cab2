"""SQL shown with its keywords, functions, strings, numbers and comments marked, server-side.

The text is cut by sqlglot's own tokenizer (the one the policy reads the query with), every
piece is HTML-escaped, and tokens get ``<span class="sql-…">``; the CSS colours them. Text
the tokenizer cannot read is shown escaped and unmarked.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape
from sqlglot import Token, Tokenizer, TokenType
from sqlglot.errors import SqlglotError

_KEYWORDS = frozenset(Tokenizer.KEYWORDS)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_LITERALS = {TokenType.STRING: "sql-string", TokenType.NUMBER: "sql-number"}


def sql(text: str) -> Markup:
    """``text`` as escaped HTML with its tokens marked."""
    try:
        tokens = Tokenizer().tokenize(text)
    except SqlglotError:
        return escape(text)
    out: list[str] = []
    position = 0
    for k, token in enumerate(tokens):
        start = max(token.start, position)  # never show a character twice
        out.append(_between(text[position:start]))
        kind = _kind(token, tokens[k + 1] if k + 1 < len(tokens) else None)
        piece = escape(text[start : token.end + 1])
        out.append(f'<span class="{kind}">{piece}</span>' if kind else str(piece))
        position = token.end + 1
    out.append(_between(text[position:]))
    return Markup("".join(out))  # noqa: S704 - every piece is escaped or a fixed tag


def _kind(token: Token, following: Token | None) -> str | None:
    if token.token_type in _LITERALS:
        return _LITERALS[token.token_type]
    if (
        following is not None
        and following.token_type is TokenType.L_PAREN
        and token.token_type is TokenType.VAR
    ):
        return "sql-function"
    if token.token_type is not TokenType.VAR and token.text.upper() in _KEYWORDS:
        return "sql-keyword"
    return None


def _between(gap: str) -> str:
    """Whitespace and comments between tokens, the comments marked."""
    out, position = [], 0
    for found in _COMMENT.finditer(gap):
        out.append(str(escape(gap[position : found.start()])))
        out.append(f'<span class="sql-comment">{escape(found.group())}</span>')
        position = found.end()
    out.append(str(escape(gap[position:])))
    return "".join(out)
