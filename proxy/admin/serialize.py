"""JSON/CSV shapes of views and records, and the activity filters the API and stream share.

Records take their one JSON form (:mod:`tracking.record_json`, the schema served at
``/api/schema/record``: a ``type`` key, then every field); other views become plain values,
enums their values and non-finite floats ``null``.  Session ids are searched without
regard to case, and a copied shortened id (``abc123…``) finds its session.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from socketio_trace_proxy.tracking.record_json import record_builtins, record_json, record_type
from socketio_trace_proxy.tracking.records import (
    LifecycleRecord,
    MessageRecord,
    Outcome,
    PairRecord,
    Record,
)
from socketio_trace_proxy.tracking.traffic import Direction
from socketio_trace_proxy.tracking.views import ActivityItem

JSON = Any  # what json.dumps accepts

_RECORD_CLASSES: tuple[type, ...] = typing.get_args(Record)
OUTCOMES = frozenset(o.value for o in Outcome)
DIRECTIONS = frozenset(d.value for d in Direction)


def to_jsonable(value: object) -> JSON:
    """Dataclasses, enums, tuples and mappings as plain JSON values."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, _RECORD_CLASSES) or _named_record(value):
        return record_builtins(value)  # type: ignore[arg-type]  # a record class added later
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, JSON] = {}
        for f in dataclasses.fields(value):
            out[f.name] = to_jsonable(getattr(value, f.name))
        return out
    if isinstance(value, Mapping):
        return {str(to_jsonable(k)): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def _named_record(value: object) -> bool:
    name = type(value).__name__
    return name.endswith("Record") and name != "Record" and dataclasses.is_dataclass(value)


def session_query(text: str | None) -> str | None:
    """A session id (or the start of one) as typed or copied: trimmed, a trailing ellipsis
    of a shortened id dropped, lower-cased for a case-blind match; ``None`` when empty."""
    query = (text or "").strip().removesuffix("…").removesuffix("...").strip().lower()
    return query or None


def record_outcome(record: Record) -> str | None:
    """A pair's outcome; a lifecycle span's ``ok``/``error``; ``None`` for one-way messages."""
    if isinstance(record, PairRecord):
        return record.outcome.value
    if isinstance(record, LifecycleRecord):
        return "ok" if record.ok else "error"
    return None


def record_direction(record: Record) -> str | None:
    """Who sent the (request) frame; ``None`` for lifecycle records."""
    if isinstance(record, PairRecord):
        return record.initiator.value
    if isinstance(record, MessageRecord):
        return record.direction.value
    return None


def record_names(record: Record) -> tuple[str, ...]:
    """The names an ``event`` filter is matched against."""
    if isinstance(record, PairRecord):
        names = (record.operation, record.rule, record.request_event)
        return (*names, record.response_event) if record.response_event else names
    if isinstance(record, MessageRecord):
        return (record.event,)
    return (record.kind.value,)


def record_wall(record: Record) -> float:
    return record.wall if isinstance(record, MessageRecord) else record.start_wall


def record_end_wall(record: Record) -> float:
    """When the record's span ended (a message's time): the order records are made in."""
    if isinstance(record, MessageRecord):
        return record.wall
    return record.start_wall + record.duration_s


@dataclass(frozen=True, slots=True)
class ActivityFilter:
    """``session`` is a session id prefix (see :func:`session_query`), ``event`` a substring
    of any of the record's names, ``outcome`` and ``direction`` exact values; unset fields
    match everything."""

    session: str | None = None
    event: str | None = None
    outcome: str | None = None
    direction: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "session", session_query(self.session))

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ActivityFilter:
        """Raises ``ValueError`` naming the bad parameter."""

        def get(name: str) -> str | None:
            value = query.get(name, "").strip()
            return value or None

        outcome, direction = get("outcome"), get("direction")
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
        if direction is not None and direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, not {direction!r}")
        return cls(
            session=get("session"),
            event=get("event"),
            outcome=outcome,
            direction=direction,
        )

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.session, self.event, self.outcome, self.direction))

    def matches(self, record: Record) -> bool:
        if self.session is not None and not (
            record.session.session_id.lower().startswith(self.session)
        ):
            return False
        if self.outcome is not None and record_outcome(record) != self.outcome:
            return False
        if self.direction is not None and record_direction(record) != self.direction:
            return False
        return self.event is None or any(self.event in n for n in record_names(record))


def item_json(item: ActivityItem) -> JSON:
    """An activity item as plain values (see :func:`item_text`)."""
    return {"seq": item.seq, "record": record_builtins(item.record)}


def item_text(item: ActivityItem) -> str:
    """An activity item as JSON text: ``{"seq": N, "record": <the record's JSON>}``."""
    return f'{{"seq":{item.seq},"record":{record_json(item.record).decode()}}}'


CSV_COLUMNS: tuple[str, ...] = (
    "seq",
    "type",
    "time_utc",
    "wall",
    "session_id",
    "namespace",
    "direction",
    "event",
    "operation",
    "rule",
    "outcome",
    "duration_ms",
    "ack_id",
    "request_size",
    "response_size",
    "error",
    "trace_id",
    "span_id",
)

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, int | float):
        return value
    text = str(value)
    # Event names come from the traffic; a spreadsheet would run "=..." as a formula
    # (OWASP "CSV injection"), so such cells are quoted as text.
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def csv_row(item: ActivityItem) -> list[str | int | float]:
    r = item.record
    wall = record_wall(r)
    time_utc = datetime.datetime.fromtimestamp(wall, tz=datetime.UTC).isoformat()
    common: dict[str, object] = {
        "seq": item.seq,
        "type": record_type(type(r)),
        "time_utc": time_utc,
        "wall": wall,
        "session_id": r.session.session_id,
        "namespace": r.namespace,
        "direction": record_direction(r),
        "outcome": record_outcome(r),
    }
    if isinstance(r, PairRecord):
        common |= {
            "event": r.request_event,
            "operation": r.operation,
            "rule": r.rule,
            "duration_ms": round(r.duration_s * 1000.0, 3),
            "ack_id": r.ack_id,
            "request_size": r.request_size,
            "response_size": r.response_size,
            "error": r.error_type,
            "trace_id": r.trace_id,
            "span_id": r.span_id,
        }
    elif isinstance(r, MessageRecord):
        common |= {"event": r.event, "request_size": r.size}
    else:
        common |= {
            "event": r.kind.value,
            "operation": r.detail,
            "duration_ms": round(r.duration_s * 1000.0, 3),
            "error": r.error,
            "trace_id": r.trace_id,
            "span_id": r.span_id,
        }
    return [_cell(common.get(c)) for c in CSV_COLUMNS]


def filter_items(items: Iterable[ActivityItem], flt: ActivityFilter) -> list[ActivityItem]:
    return [i for i in items if flt.matches(i.record)] if flt.active else list(items)
