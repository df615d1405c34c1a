"""The relay's query reading (:func:`proxy.query.query_of`): the observer gets what
``parse_qsl`` reads, whichever way the query was split."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

from socketio_trace_proxy.proxy.query import query_of

_QUERY_CHARS = st.sampled_from([*"ab=&%+41_-.~?;#", "%2", "%zz", "%C3%A9", "é"])


def _reference(target: str) -> list[tuple[str, str]]:
    qs = target.partition("?")[2]
    return list(MultiDict(parse_qsl(qs, keep_blank_values=True)).items())


@given(st.lists(_QUERY_CHARS, max_size=24).map("".join))
def test_query_of_reads_what_parse_qsl_reads(query: str) -> None:
    target = "/socket.io/?" + query
    q = query_of(target)
    assert list(q.items()) == _reference(target)
    for name, _ in _reference(target):
        assert q.get(name) == MultiDict(_reference(target)).get(name)


def test_an_engineio_query_is_split_without_escapes() -> None:
    q = query_of("/socket.io/?EIO=4&transport=polling&t=PQx1a&sid=Zm9v")
    assert dict(q) == {"EIO": "4", "transport": "polling", "t": "PQx1a", "sid": "Zm9v"}
    assert dict(query_of("/socket.io/")) == {}
    assert list(query_of("/s/?a=1&a=2").items()) == [("a", "1"), ("a", "2")]
