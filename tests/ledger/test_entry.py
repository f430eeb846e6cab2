"""Entries: canonical bytes, and bad input refused before anything is written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger import MAX_ENTRY_BYTES, Entry, EntryError, Ledger, LedgerCorruptError, canonical_json
from ledger.entry import GENESIS_PREV, TIME_TAIL_BYTES, Draft, time_from_tail


def test_rendered_entries_are_canonical_json() -> None:
    draft = Draft.build(
        "审核员:张三", "review.approved", "job-7", {"b": [1, 2.5, None], "a": {"z": True, "y": "é"}}
    )
    raw = draft.render(7, "2026-01-02T03:04:05.000006Z", "ab" * 32)
    parsed = json.loads(raw)
    assert raw == canonical_json(parsed)
    assert list(parsed) == sorted(parsed)
    assert "审核员" in raw.decode("utf-8")  # UTF-8, not \\u escapes
    assert Entry.parse(raw).details == {"a": {"y": "é", "z": True}, "b": [1, 2.5, None]}


@pytest.mark.parametrize(
    ("details", "problem"),
    [
        ({"rows": {1, 2}}, r"details\['rows'\] is a set"),
        ({"blob": b"\x00"}, r"details\['blob'\] is a bytes"),
        ({"x": float("nan")}, "cannot represent"),
        ({"x": float("inf")}, "cannot represent"),
        ({1: "a"}, "key 1 that is not a string"),
        ({"deep": [{"k": object()}]}, r"details\['deep'\]\[0\]\['k'\] is a object"),
        ({"s": "\ud800"}, "canonical JSON"),
        (["not", "a", "mapping"], "must be a JSON object"),
    ],
)
def test_unrepresentable_details_are_refused_naming_the_place(details: Any, problem: str) -> None:
    with pytest.raises(EntryError, match=problem):
        Draft.build("actor", "action", "subject", details)


@pytest.mark.parametrize(
    ("actor", "action", "subject", "problem"),
    [
        ("", "a", "s", "actor must be a non-empty string"),
        ("a", None, "s", "action must be a non-empty string"),
        ("a", "b", 5, "subject must be a non-empty string"),
        ("a" * 1025, "b", "s", "over the 1024 limit"),
        ("\udcff", "b", "s", "not valid Unicode"),
    ],
)
def test_bad_labels_are_refused(actor: Any, action: Any, subject: Any, problem: str) -> None:
    with pytest.raises(EntryError, match=problem):
        Draft.build(actor, action, subject, {})


def test_deeply_nested_details_are_refused() -> None:
    nested: Any = []
    for _ in range(100_000):
        nested = [nested]
    with pytest.raises(EntryError, match="nested too deeply"):
        Draft.build("a", "b", "c", {"n": nested})


def test_oversized_entry_is_refused_and_nothing_is_written(log: Ledger) -> None:
    log.append("a", "b", "c", {"ok": True})
    with pytest.raises(EntryError, match=f"over the {MAX_ENTRY_BYTES}-byte limit"):
        log.append("a", "b", "c", {"blob": "x" * MAX_ENTRY_BYTES})
    assert log.size == 1
    log.append("a", "b", "c", {"blob": "x" * (MAX_ENTRY_BYTES - 1000)})  # just under the limit
    assert log.size == 2


def test_one_bad_record_refuses_the_whole_batch(log: Ledger) -> None:
    with pytest.raises(EntryError):
        log.append_many([("a", "b", "c", {}), ("a", "b", "c", {"bad": {1, 2}})])
    assert log.size == 0


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda raw: raw.replace(b'"index":0', b'"index": 0'), "canonical"),
        (lambda raw: raw.replace(b'{"action"', b'{"zzz":1,"action"'), "exactly the keys"),
        (lambda raw: raw.replace(b'"index":0', b'"index":-1'), "index"),
        (lambda raw: raw.replace(b'"index":0', b'"index":true'), "index"),
        (lambda raw: raw.replace(b'Z"}', b'+08:00"}'), "time"),
        (lambda raw: raw.replace(GENESIS_PREV.encode(), b"0" * 63 + b"G"), "prev"),
        (lambda raw: raw.replace(b'"details":{}', b'"details":[]'), "details"),
        (lambda raw: raw.replace(b'"actor":"a"', b'"actor":""'), "actor"),
        (lambda raw: raw[:-1], "not valid UTF-8 JSON"),
        (lambda raw: b"\xff" + raw, "not valid UTF-8 JSON"),
    ],
)
def test_parse_refuses_damaged_entries(mutate: Any, problem: str) -> None:
    raw = Draft.build("a", "b", "c", {}).render(0, "2026-01-01T00:00:00.000000Z", GENESIS_PREV)
    Entry.parse(raw)
    with pytest.raises(LedgerCorruptError, match=problem):
        Entry.parse(mutate(raw))


@pytest.mark.parametrize("newline", [b"", b"\n"])
def test_the_time_is_read_from_the_tail_of_an_entry_whatever_its_details_hold(newline: bytes) -> None:
    decoy = {"time": "1999-01-01T00:00:00.000000Z", "note": ',"time":"1999-01-01T00:00:00.000000Z"}'}
    raw = Draft.build("a", "b", ',"time":"1999-01-01T00:00:00.000000Z"}', decoy).render(
        3, "2026-05-06T07:08:09.123456Z", GENESIS_PREV
    )
    line = raw + newline
    assert time_from_tail(line[-TIME_TAIL_BYTES:]) == "2026-05-06T07:08:09.123456Z" == json.loads(raw)["time"]


@pytest.mark.parametrize(
    "tail",
    [
        b'"time":"2026-05-06T07:08:09.123456Z"}\n',  # cut short: no comma before the key
        b',"time":"2026-05-06T07:08:09.12345xZ"}\n',
        b',"time":"2026-05-06T07:08:09.123456Z"} ',
        b',"time":"2026-05-06T07:08:09.123456Z"}\n\n',
        b',"tim":"2026-05-06T07:08:09.1234567Z"}\n',
        b"",
    ],
)
def test_a_tail_not_written_by_render_gives_no_time(tail: bytes) -> None:
    assert time_from_tail(tail) is None
