"""Replaying recorded sessions, the sans-IO part: what to send when, and what came back.

``tracking.replay.script`` rebuilds each recorded session (client packets to send, replies
expected, paired by ``tracking.correlation``'s engine through ``tracking.replay.pairing``);
``tracking.replay.session`` is the per-session state machine a replay client drives (live
packets and clock readings in, packets to send and results out); ``tracking.replay.diff``
the structural JSON diff with ignored fields and remapped ids; ``tracking.replay.report``
the per-rule summary.  No sockets, no asyncio: ``proxy.replay`` does the I/O.
"""
