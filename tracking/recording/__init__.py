"""Recordings of relayed Socket.IO sessions (``serve --record``): the file format and what
writes it.

``tracking.recording.format`` owns the versioned line format (one JSON object per line,
documented by the JSON Schema ``record-v1.schema.json`` beside it) and its reader;
``tracking.recording.splitter`` turns the relay's raw observations into format lines
(sans-IO: sessions, packets, redaction by ``tracking.capture``'s rules);
``tracking.recording.recorder`` is the :class:`tracking.observer.TrafficObserver` the relay
calls, which only queues, and the writer thread that splits, writes and rotates the file.
"""
