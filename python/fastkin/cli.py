"""The ``fastkin`` command line.

    fastkin info              build and runtime information
    fastkin info FILE [--asf ASF]
                              skeleton, frames, fps and channels of a BVH, ASF/AMC or glTF file
    fastkin bench fk [ARGS]   run bench/fk.py from a fastkin checkout (ARGS go to it)
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

BENCHMARKS = ("fk", "skinning", "ik", "io")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fastkin`` command (returns the exit status)."""
    parser = argparse.ArgumentParser(prog="fastkin", description="Fast, exact kinematics for characters.")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="describe a motion file, or (no FILE) this build as JSON")
    info.add_argument("file", nargs="?", type=Path, help="a .bvh, .amc, .gltf or .glb file")
    info.add_argument("--asf", type=Path, default=None, help="the skeleton of an .amc file")
    bench = commands.add_parser("bench", help="run a benchmark from bench/ in a fastkin checkout")
    bench.add_argument("name", choices=BENCHMARKS, help="which benchmark")
    bench.add_argument("--bench-dir", type=Path, default=None, help="folder holding the bench scripts (default: ./bench)")
    args, rest = parser.parse_known_args(argv)
    if args.command == "info":
        import fastkin

        if args.file is None:
            print(json.dumps(fastkin.build_info(), indent=2))
            return 0
        try:
            print(describe_file(args.file, args.asf))
        except (OSError, ValueError) as error:
            print(f"fastkin info: {error}", file=sys.stderr)
            return 1
        return 0
    return _run_benchmark(args.name, args.bench_dir, rest)


def describe_file(path: Path, asf: Path | None = None) -> str:
    """A human-readable summary of a motion file: frames, fps, duration and
    the joint tree with each joint's channels.

    Example:
        >>> import tempfile, os
        >>> path = Path(tempfile.mkdtemp()) / "t.bvh"
        >>> _ = path.write_text("HIERARCHY ROOT a { OFFSET 0 0 0 CHANNELS 1 Zrotation } MOTION Frames: 1 Frame Time: 0.5 7")
        >>> print(describe_file(path))  # doctest: +ELLIPSIS
        t.bvh: 1 frames at 2 fps (0.50 s), 1 joints
        a  [Zrotation]
    """
    import fastkin

    if path.suffix.lower() in (".gltf", ".glb"):
        return _describe_gltf(path)
    if path.suffix.lower() == ".amc":
        if asf is None:
            candidates = sorted(path.parent.glob("*.asf"))
            if len(candidates) != 1:
                raise ValueError(f"{path}: pass the skeleton with --asf (found {len(candidates)} .asf files beside it)")
            asf = candidates[0]
        motion = fastkin.io.load_asf_amc(asf, path)
    elif path.suffix.lower() == ".bvh":
        motion = fastkin.io.load_bvh(path)
    else:
        raise ValueError(f"{path}: unknown format: expected .bvh, .amc, .gltf or .glb")
    layout = fastkin.io.channel_layout(path, asf)
    skeleton = motion.skeleton
    lines = [f"{path.name}: {len(motion)} frames at {motion.fps:g} fps ({motion.duration:.2f} s), {skeleton.num_joints} joints"]
    depth = [0] * skeleton.num_joints
    for j, parent in enumerate(skeleton.parents):
        depth[j] = 0 if parent < 0 else depth[parent] + 1
        channels = layout.get(skeleton.names[j], [])
        lines.append(f"{'  ' * depth[j]}{skeleton.names[j]}  [{' '.join(channels)}]")
    return "\n".join(lines)


def _describe_gltf(path: Path) -> str:
    import fastkin

    characters = fastkin.io.load_gltf(path)
    lines = [f"{path.name}: {len(characters)} skin(s)"]
    for c in characters:
        vertices = sum(len(m.positions) for m in c.meshes)
        lines.append(f"skin {c.name}: {c.skeleton.num_joints} joints, {len(c.meshes)} skinned primitives ({vertices} vertices)")
        for name, motion in c.animations.items():
            lines.append(f"  animation {name}: {len(motion)} frames at {motion.fps:g} fps ({motion.duration:.2f} s)")
        parents = c.skeleton.parents
        depth = [0] * len(parents)
        for j, parent in enumerate(parents):
            depth[j] = 0 if parent < 0 else depth[parent] + 1
            lines.append(f"  {'  ' * depth[j]}{c.skeleton.names[j]}  [rotation translation]")
    return "\n".join(lines)


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
