"""The WebSocket tunnel's per-chunk path, sans sockets: what the observer does (raise, or say
the session is not sampled) never changes what is forwarded or counted."""

from __future__ import annotations

from socketio_trace_proxy.proxy.counters import RelayCounters
from socketio_trace_proxy.proxy.wsframes import close_frame
from socketio_trace_proxy.proxy.wstunnel import WebSocketTunnel
from socketio_trace_proxy.tracking.traffic import Direction

C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
KEY = b"\x11\x22\x33\x44"


def text_frame(text: str, *, masked: bool) -> bytes:
    data = text.encode()
    assert len(data) < 126
    if not masked:
        return bytes((0x81, len(data))) + data
    return bytes((0x81, 0x80 | len(data))) + KEY + bytes(b ^ KEY[i % 4] for i, b in enumerate(data))


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def set_protocol(self, protocol: object) -> None:
        pass


class Observer:
    def __init__(self, *, fail: bool = False, observing: bool = True) -> None:
        self.seen: list[tuple[Direction, str | bytes]] = []
        self.fail = fail
        self.observing = observing

    def message(self, direction: Direction, data: str | bytes) -> None:
        self.seen.append((direction, data))
        if self.fail:
            raise RuntimeError("observer bug")

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        pass


def tunnel(observer: Observer) -> tuple[WebSocketTunnel, FakeTransport, FakeTransport]:
    client, upstream = FakeTransport(), FakeTransport()
    t = WebSocketTunnel(
        client,  # type: ignore[arg-type]
        upstream,  # type: ignore[arg-type]
        max_message=1000,
        deflate=False,
        observer=observer,
        counters=RelayCounters(),
        close_timeout_s=5.0,
    )
    return t, client, upstream


async def test_a_failing_observer_is_counted_and_everything_is_forwarded() -> None:
    observer = Observer(fail=True)
    t, client, upstream = tunnel(observer)
    up = text_frame("0{}", masked=False) + text_frame("40", masked=False)
    down = text_frame('42["a"]', masked=True) + text_frame('42["b"]', masked=True)
    t.start(up)
    t.from_client(down)
    t.from_client(close_frame(1000, b"", KEY))
    assert bytes(client.written) == up and bytes(upstream.written) == down + close_frame(
        1000, b"", KEY
    )
    assert observer.seen == [(S2C, "0{}"), (S2C, "40"), (C2S, '42["a"]'), (C2S, '42["b"]')]
    counters = t._counters
    assert counters.observer_errors == 4
    assert (counters.ws_messages_c2s, counters.ws_messages_s2c) == (2, 2)
    assert t.initiator is C2S and t.close_code == 1000
    t.finish()


async def test_an_unsampled_session_is_dropped_after_the_upstreams_first_messages() -> None:
    observer = Observer(observing=False)
    t, client, upstream = tunnel(observer)
    t.from_client(text_frame("probe", masked=True))  # before the OPEN: still shown
    t.start(text_frame("0{}", masked=False))
    t.from_client(text_frame("40", masked=True))
    t.from_upstream(text_frame("40", masked=False))
    assert observer.seen == [(C2S, "probe"), (S2C, "0{}")]
    assert (t._counters.ws_messages_c2s, t._counters.ws_messages_s2c) == (2, 2)
    assert bytes(client.written) == text_frame("0{}", masked=False) + text_frame("40", masked=False)
    t.finish()
    assert client.closed and upstream.closed
