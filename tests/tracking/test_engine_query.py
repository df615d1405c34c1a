"""Engine.IO queries read in place (:class:`tracking.query.EngineQuery`): the same mapping as
``parse_qsl`` reads, whatever is asked of it, and :func:`tracking.query.query_value` the same
as ``get`` on any mapping."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict, MultiDictProxy

from socketio_trace_proxy.tracking.query import EngineQuery, query_value

# No "%" and no "+": the queries the relay reads in place.  Names that are prefixes,
# suffixes or substrings of each other, empty parts, parts without "=", repeats.
_PART = st.sampled_from(["sid", "si", "id", "xsid", "sidx", "j", "jj", "EIO", "", "=", "a=b"])
_VALUE = st.sampled_from(["", "4", "sid", "j", "x=y", "sid=1", "&"])
_NAMES = ["sid", "si", "id", "xsid", "sidx", "j", "jj", "EIO", "", "=", "a", "a=b", "&", "t"]


@st.composite
def _queries(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(_PART)
        parts.append(name if draw(st.booleans()) else f"{name}={draw(_VALUE)}")
    return "&".join(parts).replace("&&&", "&")


def _reference(qs: str) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(parse_qsl(qs, keep_blank_values=True)))


@given(_queries(), st.sampled_from(["/socket.io/?", "/a?b/?", "?"]))
def test_an_engine_query_reads_what_parse_qsl_reads(qs: str, prefix: str) -> None:
    target = prefix + qs
    q = EngineQuery(target, len(prefix))
    ref = _reference(qs)
    assert list(q.items()) == list(ref.items())
    assert list(q) == list(ref) and len(q) == len(ref)
    for name in _NAMES:
        assert q.get(name) == ref.get(name)
        assert query_value(q, name) == ref.get(name)
        assert (name in q) == (name in ref)
        if name in ref:
            assert q[name] == ref[name]
        else:
            with pytest.raises(KeyError):
                q[name]
    plain = dict(parse_qsl(qs, keep_blank_values=True))
    if len(plain) == len(ref):  # no repeated name: equal to the dict parse_qsl reads
        assert q == plain
        assert (q != plain) is False


def test_an_engine_query_is_a_read_only_mapping() -> None:
    q = EngineQuery("/socket.io/?EIO=4&transport=polling&t=PQx1a&sid=Zm9v", 12)
    assert isinstance(q, Mapping)
    assert dict(q) == {"EIO": "4", "transport": "polling", "t": "PQx1a", "sid": "Zm9v"}
    assert q == EngineQuery("?EIO=4&transport=polling&t=PQx1a&sid=Zm9v", 1)
    assert q != {"EIO": "4"} and q.get("b64", "0") == "0" and 1 not in q  # type: ignore[operator]
    assert repr(q) == repr(dict(q))
    with pytest.raises(TypeError):
        hash(q)
    assert dict(EngineQuery("/socket.io/", 11)) == {} and EngineQuery("/s", 2).get("sid") is None


def test_query_value_reads_any_mapping() -> None:
    assert query_value({"sid": "abc"}, "sid") == "abc"
    assert query_value(_reference("sid=1&sid=2"), "sid") == "1"
    assert query_value({}, "sid") is None


def test_the_sid_is_read_once_and_kept() -> None:
    q = EngineQuery("/socket.io/?EIO=4&xsid=1&sid=abc&sid=def", 11)
    assert q.sid() == "abc" and q.sid() == q.value("sid") and query_value(q, "sid") == "abc"
    assert EngineQuery("/socket.io/?EIO=4", 11).sid() is None
