"""The lists' one table macro: caption, header row, the rows its call block writes, and the
row that says there is nothing, spanning every column."""

from __future__ import annotations

import re

from gateway.console import i18n
from gateway.console.pages import TEMPLATES
from tests.gateway.api.conftest import World
from tests.gateway.console.conftest import Visitor

CALL = """{% from "_macros.html" import data_table %}
{% call(row) data_table(t, caption, headers, rows, **options) %}<tr><td>{{ row }}</td></tr>{% endcall %}"""
EMPTY_ROW = re.compile(r'<tr><td colspan="(\d+)">([^<]*)</td></tr>')
HEADERS = ["grants.id", "grants.operator", "grants.mode", "grants.status"]


def _table(
    rows: list[str], headers: list[str] = HEADERS, caption: str | None = "Grants", **options: object
) -> str:
    return TEMPLATES.from_string(CALL).render(
        t=i18n.translator("en"), caption=caption, headers=headers, rows=rows, options=options
    )


def test_an_empty_table_says_so_in_one_row_across_every_column() -> None:
    for headers in (HEADERS, HEADERS[:1], [*HEADERS, "products.action", "products.reason"]):
        page = _table([], headers)
        assert page.count("<tr>") == 2  # the header row and the one that says there is nothing
        assert EMPTY_ROW.findall(page) == [(str(len(headers)), "Nothing to show.")]
        assert page.count('<th scope="col">') == len(headers)
    assert EMPTY_ROW.findall(_table([], empty="ledger.none")) == [("4", "No entry matches here.")]
    chinese = TEMPLATES.from_string(CALL).render(
        t=i18n.translator("zh-CN"), caption=None, headers=HEADERS, rows=[], options={}
    )
    assert EMPTY_ROW.findall(chinese) == [("4", "没有可显示的内容。")] and "<caption>" not in chinese


def test_rows_come_from_the_call_block_and_nothing_is_left_unescaped() -> None:
    page = _table(["<b>one</b>", "two"], caption="<i>grants</i>", keys=True, extra="report")
    assert not EMPTY_ROW.findall(page)
    assert "<tr><td>&lt;b&gt;one&lt;/b&gt;</td></tr>" in page and "<tr><td>two</td></tr>" in page
    assert "<caption>&lt;i&gt;grants&lt;/i&gt;</caption>" in page
    assert '<div class="scroll">\n<table class="data report" data-keys="rows">' in page
    labels = re.findall(r'<th scope="col">([^<]*)</th>', page)
    assert labels == ["Authorization", "Operator", "Mode", "Status"]


def test_a_list_with_nothing_to_show_spans_its_own_columns(world: World) -> None:
    auditor = Visitor(world).sign_in("auditor")
    auditor.get("/console/lang/en")
    page = auditor.get("/console/audit/ledger", params={"action": "no.such.action"}).text
    table = page[page.index('<table class="data"') : page.index("</table>")]
    columns = len(re.findall(r'<th scope="col">', table))
    assert columns == 6 and EMPTY_ROW.findall(table) == [(str(columns), "No entry matches here.")]
