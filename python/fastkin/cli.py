"""The ``fastkin`` command line.

    fastkin info              build and runtime information
    fastkin bench fk [ARGS]   run bench/fk.py from a fastkin checkout (ARGS go to it)
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

BENCHMARKS = ("fk",)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fastkin`` command (returns the exit status)."""
    parser = argparse.ArgumentParser(prog="fastkin", description="Fast, exact kinematics for characters.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="print build and runtime information as JSON")
    bench = commands.add_parser("bench", help="run a benchmark from bench/ in a fastkin checkout")
    bench.add_argument("name", choices=BENCHMARKS, help="which benchmark")
    bench.add_argument("--bench-dir", type=Path, default=None, help="folder holding the bench scripts (default: ./bench)")
    args, rest = parser.parse_known_args(argv)
    if args.command == "info":
        import fastkin

        print(json.dumps(fastkin.build_info(), indent=2))
        return 0
    return _run_benchmark(args.name, args.bench_dir, rest)


def _run_benchmark(name: str, bench_dir: Path | None, rest: list[str]) -> int:
    folder = bench_dir or Path.cwd() / "bench"
    script = folder / f"{name}.py"
    if not script.is_file():
        print(f"fastkin bench: {script} not found; run this from a fastkin checkout or pass --bench-dir", file=sys.stderr)
        return 2
    saved = sys.argv
    sys.argv = [str(script), *rest]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as stop:
        return int(stop.code or 0) if not isinstance(stop.code, str) else 1
    finally:
        sys.argv = saved
    return 0
