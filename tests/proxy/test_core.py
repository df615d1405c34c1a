"""The relay core's first look at a Socket.IO request (:meth:`proxy.core.RelayCore.arrival`,
and the lean leg's own :meth:`proxy.core.RelayCore.lean_arrival`): on the lean server leg
the observer gets the method, query, address, port and ``traceparent`` read as the head was
parsed, without a header multidict built for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from aiohttp.http import HttpVersion11

from socketio_trace_proxy.config.proxy import ProxySettings
from socketio_trace_proxy.proxy.core import RelayCore
from socketio_trace_proxy.proxy.lean.request import LeanRequest
from socketio_trace_proxy.tracking.observer import RequestInfo, UnstampedRequests

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class _Arrivals(UnstampedRequests):
    """Records what ``request_arrived`` is given (the rest of the interface unused)."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def request_arrived(
        self,
        method: str,
        query: Mapping[str, str],
        remote: str | None,
        traceparent: str | None,
        remote_port: int | None = None,
    ) -> RequestInfo:
        self.seen.append((method, dict(query), remote, traceparent, remote_port))
        return super().request_arrived(method, query, remote, traceparent, remote_port)


def _core(observer: _Arrivals) -> RelayCore:
    return RelayCore(ProxySettings(upstream="http://127.0.0.1:9"), observer)  # type: ignore[arg-type]


ARRIVALS = pytest.mark.parametrize("arrival", ["arrival", "lean_arrival"])


@ARRIVALS
def test_a_lean_request_arrives_with_its_noted_facts(arrival: str) -> None:
    observer = _Arrivals()
    headers = [(b"Host", b"x"), (b"TraceParent", TP.encode()), (b"traceparent", b"second")]
    request = LeanRequest(
        "POST",
        "/socket.io/?EIO=4&transport=polling&sid=abc",
        "/socket.io/",
        HttpVersion11,
        headers,
        True,
        None,
        "10.0.0.7",
        51234,
    )
    info = getattr(_core(observer), arrival)(request)
    assert info is not None and info.traceparent == TP and info.remote_port == 51234
    assert observer.seen == [
        ("POST", {"EIO": "4", "transport": "polling", "sid": "abc"}, "10.0.0.7", TP, 51234)
    ]
    assert request._headers is None  # no header multidict was built to read it


@ARRIVALS
def test_no_traceparent_no_port(arrival: str) -> None:
    observer = _Arrivals()
    request = LeanRequest(
        "GET", "/socket.io/?EIO=4", "/socket.io/", HttpVersion11, [], True, None, None
    )
    info = getattr(_core(observer), arrival)(request)
    assert info is not None and (info.traceparent, info.remote_port) == (None, None)


class _Broken(_Arrivals):
    def request_arrived(self, *args: Any, **kwargs: Any) -> RequestInfo:
        raise RuntimeError("observer bug")


@ARRIVALS
def test_an_observer_failure_is_counted_and_the_request_goes_on_unobserved(arrival: str) -> None:
    request = LeanRequest(
        "GET", "/socket.io/?EIO=4", "/socket.io/", HttpVersion11, [], True, None, None
    )
    core = _core(_Broken())
    assert getattr(core, arrival)(request) is None
    assert core.counters.observer_errors == 1
    assert (
        getattr(RelayCore(ProxySettings(upstream="http://127.0.0.1:9"), None), arrival)(request)
        is None
    )
