"""The observer interface's request facts: :func:`tracking.observer.new_request_info` and the
tracker's ``request_arrived`` build the same immutable :class:`RequestInfo` as its own
constructor (the tracker makes one per relayed Socket.IO request)."""

from __future__ import annotations

import pytest

from socketio_trace_proxy.tracking.events import SessionEvent
from socketio_trace_proxy.tracking.observer import RequestInfo, new_request_info
from socketio_trace_proxy.tracking.runtime.intake import PollingIntake
from socketio_trace_proxy.tracking.sessions.table import SessionTable


def test_new_request_info_is_an_immutable_request_info() -> None:
    args = ("POST", {"EIO": "4", "sid": "abc"}, "10.0.0.7", "00-tp-01", 12.5, 51234)
    fast = new_request_info(*args)
    assert type(fast) is RequestInfo and fast == RequestInfo(*args)
    assert fast.query == {"EIO": "4", "sid": "abc"} and fast.remote_port == 51234
    assert new_request_info("GET", {}) == RequestInfo("GET", {})  # the defaults
    with pytest.raises(AttributeError):
        fast.method = "GET"  # type: ignore[misc]


def test_request_arrived_stamps_the_facts_on_the_intake_clock() -> None:
    def nothing(*args: object) -> None:
        pass

    intake = PollingIntake(nothing, nothing, None, lambda: 7.25, lambda: 1e9, nothing)
    info = intake.request_arrived("GET", {"EIO": "4"}, "10.0.0.7", "00-tp-01", 51234)
    assert type(info) is RequestInfo
    assert info == RequestInfo("GET", {"EIO": "4"}, "10.0.0.7", "00-tp-01", 7.25, 51234)
    assert intake.request_arrived("GET", {}, None, None) == RequestInfo("GET", {}, arrived_at=7.25)


def test_the_intake_calls_the_default_tables_reader_itself() -> None:
    # Given the table's polling reader, the intake calls it directly: the table's entry
    # points (here ones that must not be reached) are not called.
    events: list[SessionEvent] = []
    faults: list[str] = []
    table = SessionTable(events.append)

    def unreachable(*args: object) -> None:
        raise AssertionError("called through the entry point")

    intake = PollingIntake(
        unreachable, unreachable, None, lambda: 1.0, lambda: 1e9, faults.append,
        table.polling_reader,
    )  # fmt: skip
    handshake = intake.request_arrived("GET", {"EIO": "4", "transport": "polling"}, None, None)
    opened = b'0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'
    intake.polling_response(handshake, 200, "text/plain", None, opened)
    post = intake.request_arrived("POST", {"EIO": "4", "sid": "abc"}, None, None)
    intake.polling_request(post, b'421["echo",1]')
    intake.polling_response(post, 200, "text/html", None, b"ok")
    assert faults == []
    assert [type(e).__name__ for e in events] == ["SessionOpened", "PacketObserved"]
