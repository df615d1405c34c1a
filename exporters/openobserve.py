"""OpenObserve: where to send (URL building, Basic auth), what it stores, and what its
refusals mean.

Traces go over OTLP/HTTP (:class:`exporters.otlp.OtlpTracesPlugin`) to
``{base}/api/{org}/v1/traces`` with the ``stream-name`` header; records go to its JSON stream
``{base}/api/{org}/{stream}/_json`` (:mod:`exporters.openobserve_json`).

What OpenObserve does with it (read from its source, v0.14.4: ``config/src/utils/schema.rs``,
``config/src/utils/flatten.rs``, ``service/traces/mod.rs``, ``service/logs/ingest.rs``,
``handler/http/auth/validator.rs``; the same in later versions): a stream name is stored
normalized (:func:`stored_stream_name`: ``socket-io-traces`` is ``socket_io_traces``), every
record key is flattened and formatted (:func:`stored_field`: ``socket.request.event`` is
``socket_request_event``; span attributes become columns of the span, resource attributes
``service_<key>``), and nulls are not stored.

Which replies are transient there: 429, 502, 503, 504 as in OTLP, and 500 (a write that
failed: "error while writing trace data"; the same request succeeds once the write path
works again), and, on v0.14.4's ``_json``, a 400 whose message is ``MemoryTableOverflowError``
(the memtable is full until it is flushed; newer versions say 503).  Everything else (400 for
the body, 401, 403, 404) is permanent for the batch and explained by :data:`AUTH_HINTS`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from urllib.parse import quote

from socketio_trace_proxy.config.exporters import OpenObserveSettings
from socketio_trace_proxy.exporters.http import RETRYABLE, Reply

_API_ORG = re.compile(r"^(?P<base>.*?)/api/(?P<org>[^/]+)$")

#: What each refusal means on OpenObserve (its auth validator and ingestion handlers).
AUTH_HINTS = {
    400: "OpenObserve refused the request itself, not single records: for traces a "
    "Content-Type other than exactly application/x-protobuf or a body it cannot decode, for "
    "_json a body that is not JSON or an array element that is not an object; this batch is "
    "dropped",
    401: "OpenObserve did not accept the credentials: OPENOBSERVE_USER is the user's e-mail, "
    "OPENOBSERVE_PASS its password or its ingestion passcode (Basic, case-sensitive); a user "
    "who is not a member of OPENOBSERVE_ORG (or an organisation that does not exist for a "
    "non-root user) is refused the same way",
    403: "OpenObserve refused this organisation: in the open-source edition 403 means its "
    "ingestion quota is exhausted (a blocked organisation); with Enterprise permissions, the "
    "user may not ingest into this stream",
    404: "no OpenObserve ingestion API at this URL: check OPENOBSERVE_ENDPOINT (scheme, host, "
    "port and any base path such as ZO_BASE_URI); an unknown organisation is answered 401 or "
    "created, never 404",
}

#: Statuses OpenObserve answers for failures that pass (see the module docstring).
OPENOBSERVE_RETRYABLE = frozenset({*RETRYABLE, 500})

_STREAM_NAME_INVALID = re.compile(r"[^a-zA-Z0-9_:]+")


def stored_stream_name(name: str) -> str:
    """The name OpenObserve stores, lists and queries a stream under: every run of characters
    outside ``[a-zA-Z0-9_:]`` becomes one ``_``, then lower case (``format_stream_name`` in
    ``config/src/utils/schema.rs``)."""
    return _STREAM_NAME_INVALID.sub("_", name).lower()


def stored_stream_notes(settings: OpenObserveSettings) -> list[str]:
    """For ``check-config``: each configured stream OpenObserve will store under another name."""
    notes = []
    for field, name in (
        ("traces_stream", settings.traces_stream if settings.traces else None),
        ("json_stream", settings.json_stream),
    ):
        if name and stored_stream_name(name) != name:
            notes.append(
                f"exporters.openobserve.{field} {name!r} is stored by OpenObserve as "
                f"{stored_stream_name(name)!r}: look for that name in its UI and queries"
            )
    return notes


#: Columns worth naming where a user looks for each stream (README, "What you find").
TRACES_COLUMNS = ("operation_name", "messaging_socket_io_sid", "socket_request_event", "error_type")
JSON_COLUMNS = ("operation_name", "socket_sid", "socket_request_event", "status")


def stream_hint(kind: str, stream: str, columns: tuple[str, ...]) -> str:
    """Where OpenObserve shows a stream (``kind``: its UI's ``Traces`` or ``Logs``), under the
    name it stores it as, for the dashboard's exporter badges."""
    stored = stored_stream_name(stream)
    named = f'"{stored}"' + (f" (configured as {stream})" if stored != stream else "")
    return f"OpenObserve: {kind}, stream {named}; columns such as {', '.join(columns)}"


def stored_field(key: str) -> str:
    """The column name OpenObserve stores a record key under (``format_key`` in
    ``config/src/utils/flatten.rs``): ASCII upper case lowered, every other character that is
    not ``[a-z0-9_]`` (each one) becomes ``_``; a key with non-ASCII letters keeps its lower
    case letters and digits."""
    if key.isascii():
        return "".join(
            c.lower() if c.isupper() else c if c.islower() or c.isdigit() or c == "_" else "_"
            for c in key
        )
    return "".join(
        c if c.islower() or c.isnumeric() else c.lower()[0] if c.isupper() else "_" for c in key
    )


def memtable_full(reply: Reply) -> bool:
    """v0.14.4's ``_json`` answers a full memtable with 400 ``MemoryTableOverflowError``."""
    return reply.status == 400 and b"MemoryTableOverflow" in reply.body


@dataclass(frozen=True, slots=True)
class OpenObserveTarget:
    base: str  # scheme://host:port[/prefix], no trailing slash
    org: str

    @property
    def traces_url(self) -> str:
        return f"{self.base}/api/{quote(self.org, safe='')}/v1/traces"

    def json_url(self, stream: str) -> str:
        return f"{self.base}/api/{quote(self.org, safe='')}/{quote(stream, safe='')}/_json"


def openobserve_target(endpoint: str, org: str) -> OpenObserveTarget:
    """Base URL plus org; an endpoint already ending in ``/api/{org}`` supplies the org."""
    endpoint = endpoint.strip().rstrip("/")
    match = _API_ORG.match(endpoint)
    if match:
        return OpenObserveTarget(match.group("base"), match.group("org"))
    return OpenObserveTarget(endpoint, org)


def basic_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"
