"""Fixed-bucket histograms and bounded metric tables."""

from __future__ import annotations

import bisect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketio_trace_proxy.tracking.metrics import (
    EXACT_SAMPLES,
    LOG_BOUNDS,
    OTHER,
    Histogram,
    Metrics,
)
from socketio_trace_proxy.tracking.records import Outcome
from socketio_trace_proxy.tracking.traffic import Direction


def test_histogram_quantiles_within_one_bucket() -> None:
    h = Histogram()
    for i in range(1, 1001):
        h.observe(i / 1000)  # 1 ms .. 1 s, uniform
    s = h.summary()
    assert s.count == 1000 and s.max_s == 1.0
    assert s.p50_s is not None and 0.5 <= s.p50_s <= 0.5 * 1.26
    assert s.p95_s is not None and 0.95 <= s.p95_s <= 1.0
    assert s.p99_s is not None and 0.99 <= s.p99_s <= 1.0
    assert len(h.counts) == len(LOG_BOUNDS) + 1


def test_empty_histogram_and_extremes() -> None:
    h = Histogram()
    assert h.summary().p50_s is None
    h.observe(5000.0)  # beyond the last bucket
    h.observe(-1.0)  # clock oddities clamp to 0
    assert h.quantile(1.0) == 5000.0
    assert h.quantile(0.01) == 0.0  # exact: the clamped value itself
    estimates = Histogram.with_bounds(LOG_BOUNDS, keep=0)()
    estimates.observe(5000.0)
    estimates.observe(-1.0)
    assert estimates.quantile(1.0) == 5000.0
    assert estimates.quantile(0.01) == pytest.approx(1e-5)  # the first bucket's bound


def test_quantiles_are_exact_while_few_then_honest_estimates() -> None:
    h = Histogram()
    values = [0.001 * (i + 1) for i in range(EXACT_SAMPLES)]  # 1 ms .. 256 ms
    for v in reversed(values):
        h.observe(v)
    s = h.summary()
    assert s.exact and s.count == EXACT_SAMPLES
    # nearest rank: the ceil(q * n)-th smallest value, exactly
    assert s.p50_s == values[127] and s.p95_s == values[243] and s.p99_s == values[253]
    assert h.quantile(0.5) == values[127]
    h.observe(0.0105)
    s = h.summary()
    assert not s.exact and s.count == EXACT_SAMPLES + 1
    assert len(h.samples) == EXACT_SAMPLES  # nothing more is kept
    # an estimate is the upper bound of the median's bucket: above the true median, by
    # less than one bucket (10 per decade, a factor of 10 ** 0.1)
    assert s.p50_s is not None and 0.128 <= s.p50_s <= 0.128 * 10**0.1


def test_pair_latency_counts_only_answered_outcomes() -> None:
    m = Metrics(10)
    m.pair("r", Outcome.OK, 0.1, False)
    m.pair("r", Outcome.TIMEOUT, 5.0, False)
    m.pair("r", Outcome.LATE, 6.0, True)
    m.pair("r", Outcome.ABANDONED, 1.0, False)
    (rule,) = m.snapshot(0, {}).rules
    assert rule.outcomes == {"ok": 1, "timeout": 1, "late": 1, "abandoned": 1}
    assert rule.latency.count == 2 and rule.slow == 1


def test_event_names_fold_and_directions_are_counted() -> None:
    m = Metrics(2)
    for name in ("a", "b", "c", "d", "a"):
        m.message(name, Direction.CLIENT_TO_SERVER, 10)
    snap = m.snapshot(0, {}, {"x": 1})
    assert {(e.event, e.messages) for e in snap.events} == {("a", 2), ("b", 1), (OTHER, 2)}
    assert snap.messages_by_direction == {"c2s": 5} and snap.bytes_by_direction == {"c2s": 50}
    assert snap.drops == {"x": 1} and snap.extra["event_names_folded"] == 2


def test_histogram_over_other_bounds_keeps_the_api() -> None:
    prometheus_buckets = Histogram.with_bounds((0.1, 1.0))
    h = prometheus_buckets()
    assert isinstance(h, Histogram) and h.bounds == (0.1, 1.0)
    assert h.bounds != LOG_BOUNDS and len(Histogram().counts) == len(LOG_BOUNDS) + 1
    for v in (0.1, 0.5, 2.0):  # an upper bound is inclusive, as Prometheus' ``le``
        h.observe(v)
    assert h.counts == [1, 1, 1] and h.count == 3 and h.max == 2.0
    assert h.quantile(0.5) == 1.0 and h.quantile(1.0) == 2.0
    with pytest.raises(ValueError, match="increasing"):
        Histogram.with_bounds((1.0, 1.0))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.floats(allow_nan=True, allow_infinity=True)
        | st.sampled_from([*LOG_BOUNDS[:3], LOG_BOUNDS[-1], 0.0, -0.0, 1e-9]),
        max_size=30,
    )
)
def test_histogram_buckets_are_bisect_left_of_the_bounds(values: list[float]) -> None:
    """observe() searches the bounds itself (no call out of the compiled build): each
    value lands where bisect_left puts it, a bound itself in its own (inclusive) bucket."""
    for bounds in (LOG_BOUNDS, (0.1, 1.0), (5.0,)):
        h = Histogram.with_bounds(bounds)()
        expected = [0] * (len(bounds) + 1)
        for v in values:
            h.observe(v)
            expected[bisect.bisect_left(bounds, 0.0 if v < 0.0 else v)] += 1
        assert h.counts == expected


def test_rule_outcomes_keep_the_order_first_seen_with_ok_among_them() -> None:
    """Ok pairs are counted apart (an integer, not a dict update per pair) yet the
    snapshot's outcomes keep the order each outcome was first seen in."""
    m = Metrics(max_event_names=10)
    m.pair("r", Outcome.ERROR, 0.1, False)
    m.pair("r", Outcome.OK, 0.1, False)
    m.pair("r", Outcome.TIMEOUT, 1.0, False)
    m.pair("r", Outcome.OK, 0.2, True)
    rule = m.snapshot(0, {}).rules[0]
    assert list(rule.outcomes.items()) == [("error", 1), ("ok", 2), ("timeout", 1)]
    assert rule.slow == 1 and rule.latency.count == 3
