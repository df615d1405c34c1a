"""Summarise a py-spy ``--format raw`` (collapsed stacks) profile: self and inclusive shares.

``py-spy record -p PID --format raw -o prof.txt`` writes one ``frame;frame;... count`` line
per distinct stack; this prints the functions with the largest self time and the largest
inclusive time (each function counted once per stack), as percentages of all samples, with
an optional ``--match`` filter (e.g. ``tracking/``) to see one package's total share.

Usage: ``python bench/profile_summary.py prof.txt [--top 25] [--match tracking/]``
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

# py-spy frames look like ``function (path/to/file.py:123)``; drop the line number so a
# function's samples add up across lines.
_LINE = re.compile(r":\d+\)$")


def _name(frame: str) -> str:
    return _LINE.sub(")", frame.strip())


def summarise(lines: list[str], match: str | None) -> tuple[int, Counter[str], Counter[str], int]:
    total = 0
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    matched = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
        if match is not None and any(match in f for f in frames):
            matched += count
    return total, own, incl, matched


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--match", help="also report the share of stacks containing this text")
    args = p.parse_args(argv)
    total, own, incl, matched = summarise(
        args.profile.read_text(errors="replace").splitlines(), args.match
    )
    if total == 0:
        print("no samples", file=sys.stderr)
        return 1
    print(f"{total} samples")
    print(f"\nself time (top {args.top}):")
    for name, n in own.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print(f"\ninclusive time (top {args.top}):")
    for name, n in incl.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    if args.match is not None:
        print(f"\nstacks containing {args.match!r}: {100 * matched / total:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
