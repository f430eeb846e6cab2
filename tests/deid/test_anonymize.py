"""Free-text anonymization: identifiers inside sentences are transformed, the rest kept."""

from __future__ import annotations

import pyarrow as pa
import pytest

from deid.anonymize import OPERATORS, TextAnonymizer
from deid.errors import DeidError
from deid.keys import MasterKey

TEXT = "联系人：张伟，电话13800138000，身份证11010519491231002X，反映路灯损坏"
SECRETS = ("13800138000", "11010519491231002X", "张伟")


@pytest.mark.parametrize("operator", OPERATORS)
def test_every_operator_removes_the_identifiers_and_keeps_the_words(operator: str) -> None:
    out = TextAnonymizer(operator, MasterKey(bytes(32))).anonymize(TEXT)  # type: ignore[arg-type]
    for secret in SECRETS:
        assert secret not in out
    assert out.endswith("反映路灯损坏")


def test_replace_names_the_entity() -> None:
    out = TextAnonymizer("replace").anonymize(TEXT)
    assert "<CN_MOBILE>" in out and "<CN_RESIDENT_ID>" in out


def test_hash_is_stable_per_enclave_and_differs_between_enclaves() -> None:
    first = TextAnonymizer("hash", MasterKey(bytes(32)))
    assert first.anonymize(TEXT) == first.anonymize(TEXT)
    assert first.anonymize(TEXT) != TextAnonymizer("hash", MasterKey(b"\x01" * 32)).anonymize(TEXT)


def test_text_without_identifiers_is_unchanged_and_nulls_stay_null() -> None:
    column = TextAnonymizer("mask").anonymize_column(pa.array(["路面积水", None, "电话13800138000"]))
    assert column.to_pylist()[:2] == ["路面积水", None]
    assert "13800138000" not in column.to_pylist()[2]


def test_operators_needing_key_material_refuse_without_it() -> None:
    for operator in ("hash", "encrypt"):
        with pytest.raises(DeidError, match="master key"):
            TextAnonymizer(operator)  # type: ignore[arg-type]
    with pytest.raises(DeidError, match="unknown operator"):
        TextAnonymizer("shuffle")  # type: ignore[arg-type]
