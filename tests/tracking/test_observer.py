"""The observer interface's request facts: :func:`tracking.observer.new_request_info` builds
the same frozen :class:`RequestInfo` as its own constructor (the tracker makes one per
relayed Socket.IO request)."""

from __future__ import annotations

import dataclasses

import pytest

from socketio_trace_proxy.tracking.observer import RequestInfo, new_request_info


def test_new_request_info_is_a_frozen_request_info() -> None:
    args = ("POST", {"EIO": "4", "sid": "abc"}, "10.0.0.7", "00-tp-01", 12.5, 51234)
    fast = new_request_info(*args)
    assert type(fast) is RequestInfo and fast == RequestInfo(*args)
    assert new_request_info("GET", {}) == RequestInfo("GET", {})  # the defaults
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.method = "GET"  # type: ignore[misc]
