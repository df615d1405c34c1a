"""What a :class:`exporters.batching.BatchingSink` is told and what it says: the batching and
retry policy (:class:`BatchPolicy`) and the export states its health reports
(:class:`ExportState`), kept apart from the worker so that the factory and the admin views
read them without the threading core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_batch: int = 512
    interval_s: float = 5.0
    max_queue: int = 8192
    max_retries: int | None = None  # None: only the time budget limits the retries
    retry_budget_s: float = 300.0  # a batch is given up this long after its first failure
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 10.0
    jitter: float = 0.2  # backoff is multiplied by uniform(1 - jitter, 1 + jitter)
    max_retry_after_s: float = 60.0
    request_timeout_s: float = 10.0  # total deadline of one request


class ExportState:
    """What :attr:`SinkHealth.state` says; only ``OK`` is healthy.

    ``OK``: the last completed send succeeded (or none was needed yet) and nothing was
    dropped since.  ``RETRYING``: a batch failed transiently and is being retried.
    ``FAILING``: the last batch was refused for good or given up.  ``DROPPING``: the queue
    overflowed since the last completed send.  ``STALLED``: a send has been in flight past
    its deadline (a receiver or resolver that hangs).
    """

    OK: Final = "ok"
    RETRYING: Final = "retrying"
    FAILING: Final = "failing"
    DROPPING: Final = "dropping"
    STALLED: Final = "stalled"


STALL_MARGIN_S = 5.0  # past the request deadline before an in-flight send counts as stalled
