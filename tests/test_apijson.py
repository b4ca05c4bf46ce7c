"""clients/apijson.py against the json package: the same values read, the
same strings quoted, the same texts refused, and dtdctl without json."""

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from dtd.clients import apijson

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.booleans(), st.sampled_from(["", " ", "\n", " \t\r\n"]))
def test_reads_what_json_reads(value: object, ascii: bool, space: str) -> None:
    text = space + json.dumps(value, ensure_ascii=ascii, indent=1 if ascii else None) + space
    assert apijson.loads(text.encode()) == json.loads(text)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_quotes_as_json_does(text: str) -> None:
    assert apijson.quote(text) == json.dumps(text, ensure_ascii=False)


@pytest.mark.parametrize("text", [b"", b" ", b"{", b'{"a": 1} {}', b"[1,]", b"nul", b'"\x01"',
                                  b"{'a': 1}", b"1 2", b"\xff"])
def test_refuses_what_json_refuses(text: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        apijson.loads(text)


def test_constants_as_json_reads_them() -> None:
    got = apijson.loads(b'[NaN, Infinity, -Infinity, 1e400, 12345678901234567890]')
    want = json.loads('[NaN, Infinity, -Infinity, 1e400, 12345678901234567890]')
    assert repr(got) == repr(want)


def test_dtdctl_does_not_import_json() -> None:
    """json imports re: 8 ms of every dtdctl."""
    code = "import sys; import dtd.clients.dtdctl; print('json' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out == "False\n"


def test_without_json_in_c() -> None:
    """Where there is no _json (not CPython), json itself does the work."""
    code = ("import sys; sys.modules['_json'] = None\n"
            "from dtd.clients import apijson\n"
            "assert apijson._scan is None\n"
            "print(apijson.loads(b' {\"a\": [1, 2.5, null]} '), apijson.quote('\\u00e9\"\\n'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out == "{'a': [1, 2.5, None]} \"\u00e9\\\"\\n\"\n"
