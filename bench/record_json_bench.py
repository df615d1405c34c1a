"""Record JSON benchmark: CPU per record for each JSON form a record takes.

Encodes the export bench's realistic pairs (``export_bench.make_records``: 50 sessions, ~5 %
timeouts, some acks) with each encoder, single-threaded, best of ``--repeat`` runs:

* ``ndjson file``: the NDJSON file exporter's ``encode`` (one batch of ``--batch`` records);
* ``openobserve _json``: the OpenObserve JSON stream exporter's ``encode``;
* ``api item``: one ``{"seq":..,"record":..}`` text as ``/api/events``, ``/api/export`` and
  the live stream write it.

    .venv/bin/python bench/record_json_bench.py [--records 20000] [--batch 512]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.export_bench import make_records  # noqa: E402
from socketio_trace_proxy.exporters.local import NdjsonFilePlugin  # noqa: E402
from socketio_trace_proxy.exporters.openobserve_json import OpenObserveJsonPlugin  # noqa: E402
from socketio_trace_proxy.proxy.admin.serialize import item_text  # noqa: E402
from socketio_trace_proxy.tracking.records import Record  # noqa: E402
from socketio_trace_proxy.tracking.views import ActivityItem  # noqa: E402


def best_us(work: Callable[[], object], count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best / count * 1e6


def batched(records: Sequence[Record], size: int) -> list[Sequence[Record]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU per record for each record JSON form")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    records: list[Record] = list(make_records(args.records))
    batches = batched(records, args.batch)
    ndjson = NdjsonFilePlugin("unused", max_bytes=1 << 30)
    oo = OpenObserveJsonPlugin(
        "http://127.0.0.1:9/api/default/s/_json", "s", "bench", {}, gzip=False
    )
    items = [ActivityItem(n, r) for n, r in enumerate(records)]

    def run_ndjson() -> None:
        for b in batches:
            ndjson.encode(b)

    def run_oo() -> None:
        for b in batches:
            oo.encode(b)

    def run_items() -> None:
        for i in items:
            item_text(i)

    print(f"{args.records} pair records, batches of {args.batch}, best of {args.repeat}")
    for name, work in (
        ("ndjson file", run_ndjson),
        ("openobserve _json", run_oo),
        ("api item", run_items),
    ):
        print(f"  {name:<18} {best_us(work, len(records), args.repeat):6.2f} us/record")


if __name__ == "__main__":
    main()
