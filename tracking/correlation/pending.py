"""The pending table: every unanswered request, its deadline heap, and remembered timeouts.

Owns the bookkeeping of requests in flight (the dispatch puts a new one in the indexes):
forgetting one (answered or ended) from all of them, the min-heap of deadlines that says
which times out next (stale entries of answered requests are skipped, and the heap is
rebuilt when they dominate, so memory follows the pending count, not the pair rate), and
per session a bounded memory of timed-out requests that a late reply can still be linked
to.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, cast

from socketio_trace_proxy.tracking.correlation.state import Pending, SessionState, TimedOut
from socketio_trace_proxy.tracking.metrics import Metrics
from socketio_trace_proxy.tracking.records import PairKind

_KIND_ACK: Final = PairKind.ACK


class PendingTable:
    """See the module docstring."""

    def __init__(
        self,
        metrics: Metrics,
        on_deadline: Callable[[float], None] | None,
        *,
        late_window_s: float,
        max_timed_out_per_session: int,
    ) -> None:
        self._metrics = metrics
        self._on_deadline = on_deadline
        self._late_window = late_window_s
        self._max_timed_out = max_timed_out_per_session
        # Oldest first.  An OrderedDict, not a plain dict: at the global limit every new
        # request evicts the oldest, and a plain dict's first live entry sits behind the
        # deleted slots before it (found by a scan until the next resize): at 100,000
        # pending that is ~9-35 us per eviction against ~0.2 us here.
        self.pending: OrderedDict[int, Pending] = OrderedDict()
        self.heap: list[tuple[float, int, Pending]] = []
        #: The next request id (1, 2, 3, ...; a C-level counter: called per request).
        self.new_id: Callable[[], int] = itertools.count(1).__next__

    def push(self, q: Pending) -> None:
        """(Re)schedule ``q`` at its deadline (a stream chunk pushes it on)."""
        heap = self.heap
        heapq.heappush(heap, (q.deadline, q.id, q))
        if heap[0][2] is q and self._on_deadline is not None:
            self._on_deadline(q.deadline)

    def forget(self, q: Pending) -> None:
        """Remove ``q`` from every index (its heap entry goes stale)."""
        s = q.session
        # Typed ``object`` on purpose: the compiled build boxes the id once (not per use)
        # and keeps the ack key the very tuple stored in ``acks`` (found by identity); as
        # ``int``/``tuple[str, int, bool]`` it would build a new int/tuple for every use.
        qid: object = q.id
        mine = cast("dict[object, Pending]", s.pending)
        if qid in mine:
            del mine[qid]
        pending = cast("OrderedDict[object, Pending]", self.pending)
        if qid in pending:
            del pending[qid]
        if q.kind is _KIND_ACK:
            akey: object = q.ack_key
            acks = cast("dict[object, Pending]", s.acks)
            if akey is not None and acks.get(akey) is q:
                del acks[akey]
        elif q.rule is not None:
            group = s.groups.get((q.namespace, q.rule.index))
            if group is not None:
                group.remove(q)

    def next_deadline(self) -> float | None:
        return self.heap[0][0] if self.heap else None

    def pop_due(self, at: float) -> Pending | None:
        """The next request whose deadline is ``at`` or earlier, if any (still pending)."""
        heap = self.heap
        while heap and heap[0][0] <= at:
            deadline, _, p = heapq.heappop(heap)
            if p.id in self.pending and p.deadline == deadline:
                return p
            # answered already, or a stream chunk pushed its deadline on
        return None

    def compact(self) -> None:
        """Rebuild the heap when stale entries dominate it (in place: the engine holds the
        list itself)."""
        heap = self.heap
        if len(heap) > 2 * len(self.pending) + 64:
            heap[:] = [(q.deadline, q.id, q) for q in self.pending.values()]
            heapq.heapify(heap)
            self._metrics.extra["heap_compactions"] += 1

    # --- timed-out memory -------------------------------------------------------------------

    def remember_timeout(self, q: Pending, trace_id: str) -> None:
        """Keep what a late reply to ``q`` needs (the oldest memory goes first)."""
        limit = self._max_timed_out
        if not limit:
            return
        memory = q.session.timed_out
        while len(memory) >= limit:
            memory.popitem(last=False)
            self._metrics.drops["timed_out_memory"] += 1
        q.payload = None  # a late record does not repeat the request's payload
        memory[q.id] = TimedOut(trace_id, q)

    def take_timed_out(
        self, s: SessionState, at: float, test: Callable[[TimedOut], bool]
    ) -> TimedOut | None:
        """The remembered timeout of ``s`` that ``test`` accepts (forgotten once taken);
        memories older than the late window are dropped first."""
        memory = s.timed_out
        if not memory:
            return None
        horizon = at - self._late_window
        for tid in [tid for tid, o in memory.items() if o.request.at < horizon]:
            del memory[tid]
        for tid, o in memory.items():
            if test(o):
                del memory[tid]
                return o
        return None
