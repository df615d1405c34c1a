"""Issue 14: the lean leg's upstream request head, built from the headers a request noted
(no header multidict), is byte for byte the head :meth:`RelayCore.request_head` builds from
the full multidict, for any header lines and every forwarding setting."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from socketio_trace_proxy.config.proxy import AddressHeaders, ProxySettings
from socketio_trace_proxy.proxy.core import RelayCore
from socketio_trace_proxy.proxy.headers import DROP_UPGRADE_BYTES, EXTENSIONS_BYTES
from socketio_trace_proxy.proxy.lean.exchange import lean_heads, upstream_head
from socketio_trace_proxy.proxy.lean.request import LeanRequest

NAMES = [
    b"Host", b"host", b"Connection", b"CONNECTION", b"Keep-Alive", b"X-Forwarded-For",
    b"x-forwarded-for", b"X-Forwarded-Host", b"Forwarded", b"X-Real-IP", b"x_real_ip",
    b"X_Forwarded_For", b"Cookie", b"Accept", b"Content-Length", b"Transfer-Encoding",
    b"Expect", b"Upgrade", b"TE", b"X-Custom", b"x-custom", b"Traceparent",
]  # fmt: skip
VALUES = [
    b"", b"a", b"keep-alive", b"close", b"x-custom, Keep-Alive", b"X-Custom", b"10.0.0.1",
    b"h:80", b"for=1.2.3.4", b"\xc3\xa9t\xc3\xa9", b"\xff\xfe", b"12", b"chunked",
]  # fmt: skip
HEADERS = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    headers=HEADERS,
    method=st.sampled_from(["GET", "POST", "OPTIONS"]),
    body=st.sampled_from([None, b"", b"42[1]"]),
    remote=st.sampled_from([None, "127.0.0.1", "::1"]),
    forwarded=st.booleans(),
    address=st.sampled_from(list(AddressHeaders)),
)
def test_the_lean_head_is_request_heads(  # noqa: PLR0917 - one per drawn part
    headers: list[tuple[bytes, bytes]],
    method: str,
    body: bytes | None,
    remote: str | None,
    forwarded: bool,
    address: AddressHeaders,
) -> None:
    core = RelayCore(
        ProxySettings(
            upstream="http://127.0.0.1:1/base",
            forwarded_headers=forwarded,
            client_address_headers=address,
        ),
        None,
    )
    request = LeanRequest(
        method, "/socket.io/?EIO=4&t=1", "/socket.io/", (1, 1), headers, True, None, remote
    )
    expected = core.request_head(request, body)
    heads = lean_heads(core)
    assert upstream_head(heads, core, request, body) == expected
    assert upstream_head(heads, core, request, body) == expected  # its Connection value known
    # An upgrade's head: Connection and Upgrade kept, the extensions dropped (the lean leg's
    # relay_upgrade, as WebSocketLegs.forward_handshake builds it).
    keep, drop = DROP_UPGRADE_BYTES, EXTENSIONS_BYTES
    upgrade = core.request_head(request, None, keep=keep, drop=drop)
    assert upstream_head(heads, core, request, None, keep, drop) == upgrade


def test_the_connection_values_known_are_bounded() -> None:
    """The builder keeps the drop sets of the ``Connection`` values it met, a bounded
    number; a value met again after the table was emptied gives the same head."""
    core = RelayCore(ProxySettings(upstream="http://127.0.0.1:1"), None)
    heads = lean_heads(core)
    first = [(b"Connection", b"x-0"), (b"X-0", b"a"), (b"X-1", b"b")]
    request = LeanRequest("GET", "/socket.io/", "/socket.io/", (1, 1), first, True, None, None)
    head = upstream_head(heads, core, request, None)
    assert b"X-0:" not in head
    assert b"X-1: b" in head
    for n in range(200):
        assert heads.dropped(b"x-%d" % n) == core.request_drop | {b"x-%d" % n}
        # Counted each time the full table (64) is emptied: as the 65th, 129th and 193rd
        # distinct values come ("x-0" came first, with the request).
        assert heads.cleared == n // 64
    assert heads.cleared == 3
    assert heads.dropped(b"x-0") == core.request_drop | {b"x-0"}
    assert upstream_head(heads, core, request, None) == head == core.request_head(request, None)
