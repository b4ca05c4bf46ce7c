"""The API's JSON, read and quoted without the json package for the
clients' quick commands: json.decoder and json.encoder import re, 8 ms of
a client's start-up here (python -c 'import json' 21.9 ms against 13.6 for
'pass'), more than all the rest of dtdctl. What they use instead is what
json itself runs on CPython, the C scanner and string quoting of _json;
elsewhere json itself. Output that needs json.dumps' options (indent,
separators) imports json where it is made."""

try:
    import _json
except ImportError:  # not CPython
    _json = None  # type: ignore[assignment]

# typing costs start-up time; mypy treats any name TYPE_CHECKING as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WHITESPACE = " \t\n\r"  # JSON's, and no more


class _Decoder:
    """What _json's scanner reads of a json.JSONDecoder: its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                      "NaN": float("nan")}.__getitem__


# the scanner reads a decoder's attributes; it needs no JSONDecoder itself
_scan = _json.make_scanner(_Decoder()) if _json is not None else None  # type: ignore[arg-type]


def loads(data: bytes) -> "Any":
    """The value of one JSON text, as json.loads gives it; ValueError
    where data is not one."""
    if _scan is None:
        import json
        return json.loads(data)
    text = data.decode()
    start = len(text) - len(text.lstrip(WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as e:
        raise ValueError(f"no JSON value at character {e.value}") from None
    if text[end:].strip(WHITESPACE):
        raise ValueError(f"more than one JSON value: extra data at character {end}")
    return value


def quote(text: str) -> str:
    """text as a JSON string, as json.dumps(text, ensure_ascii=False) has
    it."""
    if _json is None:
        import json
        return json.dumps(text, ensure_ascii=False)
    return str(_json.encode_basestring(text))
