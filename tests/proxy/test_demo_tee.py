"""The tee in front of several observers: each is told everything, in order, and an idle
recorder drops out of the path (the tee hands the calls straight to the one observer left)."""

from __future__ import annotations

from pathlib import Path

from socketio_trace_proxy.config.record import RecordSettings
from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.proxy.demo import TeeObserver, _TeeLeg
from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.recording.recorder import Recorder
from socketio_trace_proxy.tracking.traffic import Direction
from tests.proxy.peers import RecordingObserver

C2S = Direction.CLIENT_TO_SERVER
WS = RequestInfo("GET", {"EIO": "4", "transport": "websocket"})
POST = RequestInfo("POST", {"EIO": "4", "transport": "polling", "sid": "A"})


def recorder(path: Path) -> Recorder:
    settings = RecordSettings.model_validate({"path": str(path), "flush_interval": 3600})
    return Recorder(settings, TrackingSettings(), version="t")


def test_an_idle_recorder_is_out_of_the_path_and_a_started_one_back_in(tmp_path: Path) -> None:
    first, rec = RecordingObserver(), recorder(tmp_path / "r.jsonl")
    tee = TeeObserver([first, rec])
    # idle: the relay calls the one active observer's own methods
    assert tee.polling_request == first.polling_request
    assert tee.websocket_opened == first.websocket_opened
    leg = tee.websocket_opened(WS)
    assert leg is not None and not isinstance(leg, _TeeLeg)
    tee.polling_request(POST, b"40")
    assert rec.status().queued == 0

    rec.start()
    try:
        assert tee.polling_request != first.polling_request
        both = tee.websocket_opened(WS)
        assert isinstance(both, _TeeLeg)
        both.message(C2S, '42["e"]')
        tee.polling_request(POST, b"41")
        assert rec.status().queued == 3  # the WebSocket's open, its message, the POST body
    finally:
        rec.stop()
    assert tee.polling_request == first.polling_request
    assert [item[2] for item in first.log.items] == [b"40", '42["e"]', b"41"]


def test_request_info_is_the_first_live_observers(tmp_path: Path) -> None:
    first, second = RecordingObserver(), RecordingObserver()
    tee = TeeObserver([first, second])
    info = tee.request_arrived("GET", {"EIO": "4"}, "127.0.0.1", None, 4242)
    assert info.remote_port == 4242
    tee.polling_request(POST, b"40")
    assert first.infos == second.infos == [POST]
    assert isinstance(tee.websocket_opened(WS), _TeeLeg)
