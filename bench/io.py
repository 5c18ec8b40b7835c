"""BVH reading speed: fastkin.io.load_bvh against bvhio.readAsBvh.

    python bench/io.py [--file PATH] [--out PATH]

Default file: ../shared/data/train/cmu-bvh/01_03.bvh (CMU 01_03: 31 joints,
4,511 frames). Both readers are timed in the same run (best of several
repeats); the ratio is written to bench/results/io.md with the command.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import warnings
from pathlib import Path

import fastkin

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, also when run through runpy
from common import best_time  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FILE = REPO.parent / "shared" / "data" / "train" / "cmu-bvh" / "01_03.bvh"



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "io.md")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"bench/io.py: {args.file} not found (pass --file)", file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        motion = fastkin.io.load_bvh(args.file)
        ours = best_time(lambda: fastkin.io.load_bvh(args.file), args.repeats)
    rows = [f"| fastkin.io.load_bvh | {ours * 1e3:.1f} | 1.0x |"]
    try:
        import bvhio
    except ImportError:
        rows.append("| bvhio | not installed (`pip install bvhio`) | |")
        ratio_line = "bvhio not installed: no ratio."
    else:
        theirs = best_time(lambda: bvhio.readAsBvh(str(args.file)), max(1, args.repeats // 2))
        rows.append(f"| bvhio.readAsBvh | {theirs * 1e3:.1f} | {theirs / ours:.1f}x slower |")
        ratio_line = f"fastkin is **{theirs / ours:.1f}x** faster than bvhio (target >= 10x: {'met' if theirs / ours >= 10 else 'not met'})."
    report = "\n".join(
        [
            "# BVH reading benchmark",
            "",
            f"Command: `python bench/io.py --file {args.file.name}`  ",
            f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
            f"File: `{args.file.name}`: {motion.skeleton.num_joints} joints (end sites included), {len(motion)} frames  ",
            f"fastkin {fastkin.__version__}, best of {args.repeats} runs each (bvhio: best of {max(1, args.repeats // 2)})",
            "",
            "| reader | ms per file | relative |",
            "|---|---:|---:|",
            *rows,
            "",
            ratio_line,
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
