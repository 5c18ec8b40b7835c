"""The ``fastkin`` command line.

    fastkin info              build and runtime information
    fastkin info FILE [--asf ASF]
                              skeleton, frames, fps and channels of a BVH, ASF/AMC or glTF file
    fastkin ik POSITIONS.npy --skeleton FILE.bvh -o OUT.bvh
                              solve a motion from joint positions and write it as BVH
    fastkin train ikgat --data DIR... --skeleton FILE --out DIR
                              train a learned IK model (also under torchrun)
    fastkin bench [--out DIR]  the main job: learned vs analytic vs iterative IK on held-out CMU motion
    fastkin bench NAME [ARGS] run bench/NAME.py from a fastkin checkout (ARGS go to it)
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

BENCHMARKS = ("fk", "skinning", "ik", "io")
# IKGAT constructor arguments `fastkin train ikgat` takes as --NAME.
MODEL_SIZES = ("width", "layers", "heads", "hops", "expansion")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fastkin`` command (returns the exit status)."""
    parser = argparse.ArgumentParser(prog="fastkin", description="Fast, exact kinematics for characters.")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="describe a motion file, or (no FILE) this build as JSON")
    info.add_argument("file", nargs="?", type=Path, help="a .bvh, .amc, .gltf or .glb file")
    info.add_argument("--asf", type=Path, default=None, help="the skeleton of an .amc file")
    ik = commands.add_parser("ik", help="solve a motion from joint positions (.npy) and write it as BVH")
    ik.add_argument("positions", type=Path, help="a .npy of world joint positions (frames, J, 3) in the skeleton's joint order")
    ik.add_argument("--skeleton", type=Path, required=True, help="a .bvh whose skeleton (hierarchy, offsets) to pose")
    ik.add_argument("-o", "--output", type=Path, required=True, help="the .bvh to write")
    ik.add_argument("--fps", type=float, default=None, help="frame rate of the output (default: the skeleton file's)")
    ik.add_argument("--smoothness", type=float, default=1e-4, help="pull of each frame towards the previous one (unit-free)")
    ik.add_argument("--quiet", action="store_true", help="no progress bar")
    train = commands.add_parser("train", help="train a learned IK model (runs under torchrun too)")
    train.add_argument("model", choices=["ikgat", "p2r"],
                       help="ikgat: IK-GAT for one skeleton; p2r: PoseToRotation for any skeleton")
    train.add_argument("--data", type=Path, nargs="+", required=True, help="folders or files of BVH / ASF-AMC / glTF motion")
    train.add_argument("--skeleton", type=Path, default=None, help="ikgat: a .bvh (or .glb) whose skeleton the model is for")
    train.add_argument("--out", type=Path, required=True, help="folder for model.pt, model.json, checkpoint.pt, log.jsonl")
    train.add_argument("--holdout-data", type=Path, nargs="*", default=[], help="more motion to validate on, never trained on")
    train.add_argument("--holdout-takes", nargs="*", default=None, help="take names (file stems) held out of --data")
    train.add_argument("--holdout-subjects", nargs="*", default=None, help="subjects (CMU: before the first _) held out")
    for name, kind in (("steps", int), ("batch-size", int), ("learning-rate", float), ("fps", float), ("seed", int),
                       ("validate-every", int), ("fk-weight", float)):
        train.add_argument(f"--{name}", type=kind, default=None)
    for name in MODEL_SIZES:
        train.add_argument(f"--{name}", type=int, default=None, help="model size")
    train.add_argument("--noise", type=float, default=None,
                       help="ikgat: largest position noise of the augmentation, a fraction of the height (default 0.02)")
    train.add_argument("--max-hops", type=int, default=None, help="p2r: hop distances beyond this share a bias")
    train.add_argument("--exclude", nargs="*", default=[], help="p2r: file stems left out of --data (unseen skeletons)")
    train.add_argument("--procedural", type=int, default=None, help="p2r: generated clips added to the data")
    train.add_argument("--resume", action="store_true", help="ikgat: continue from OUT/checkpoint.pt")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    bench = commands.add_parser("bench", help="run a benchmark from bench/ in a fastkin checkout")
    bench.add_argument("name", nargs="?", choices=BENCHMARKS, default=None,
                       help="a benchmark from bench/; without it, the main job: learned IK against analytic and iterative IK")
    bench.add_argument("--out", type=Path, default=Path("bench/results/learned"), help="folder for the main job's report")
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
    if args.command == "ik":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        try:
            return solve_positions_file(args.positions, args.skeleton, args.output, args.fps, args.smoothness, not args.quiet)
        except (OSError, ValueError) as error:
            print(f"fastkin ik: {error}", file=sys.stderr)
            return 1
    if args.command == "train":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        try:
            return _train(args)
        except (OSError, ValueError) as error:
            print(f"fastkin train: {error}", file=sys.stderr)
            return 1
    if args.name is None:
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        from .learned import run_benchmark

        run_benchmark(args.out)
        return 0
    return _run_benchmark(args.name, args.bench_dir, rest)


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .learned import P2RConfig, TrainConfig, train_ikgat, train_p2r

    if args.model == "p2r":
        p2r = replace(P2RConfig(), **{k: getattr(args, k) for k in ("steps", "learning_rate", "fps", "seed",
                                                                    "validate_every", "procedural")
                                      if getattr(args, k) is not None})
        sizes = {k: getattr(args, k) for k in ("width", "layers", "heads", "max_hops", "expansion")
                 if getattr(args, k) is not None}
        p2r = replace(p2r, model={**p2r.model, **sizes})
        result = train_p2r(args.data, args.out, p2r, exclude=args.exclude, holdout=args.holdout_data,
                           progress=not args.quiet)
        print(json.dumps(result))
        return 0
    if args.skeleton is None:
        raise ValueError("--skeleton is needed to train ikgat (the skeleton the model is for)")

    config = TrainConfig()
    settings = {k: getattr(args, k) for k in ("steps", "batch_size", "learning_rate", "fps", "seed", "validate_every",
                                              "fk_weight", "holdout_takes", "holdout_subjects")}
    config = replace(config, **{k: v for k, v in settings.items() if v is not None})
    sizes = {k: getattr(args, k) for k in MODEL_SIZES if getattr(args, k) is not None}
    config = replace(config, model={**config.model, **sizes})
    if args.noise is not None:
        config = replace(config, augmentation={**config.augmentation, "noise": args.noise})
    skeleton = _skeleton_of(args.skeleton)
    result = train_ikgat(args.data, skeleton, args.out, config, holdout_data=args.holdout_data, resume=args.resume,
                         progress=not args.quiet)
    print(json.dumps(result))
    return 0


def _skeleton_of(path: Path):
    import fastkin

    if path.suffix.lower() in (".glb", ".gltf"):
        return fastkin.io.load_gltf(path)[0].skeleton
    return fastkin.io.load_bvh(path).skeleton


def solve_positions_file(positions: Path, skeleton_file: Path, output: Path, fps: float | None = None,
                         smoothness: float = 1e-4, progress: bool = True) -> int:
    """Solves a motion from world joint positions ``(frames, J, 3)`` (a
    ``.npy``, read without pickle) for the skeleton of a BVH file with
    :func:`fastkin.ik.solve_sequence`, and writes it as BVH. Prints a
    progress bar on standard error and a summary on standard output; returns
    0, or 1 when some frames did not converge (they are written anyway).

    Example:
        >>> import tempfile, numpy as np, fastkin
        >>> folder = Path(tempfile.mkdtemp())
        >>> walk = fastkin.data.default_motion()[:20]
        >>> np.save(folder / "walk.npy", walk.positions())
        >>> solve_positions_file(folder / "walk.npy", fastkin.data.path("cmu_12_01_walk.bvh"), folder / "out.bvh", progress=False)  # doctest: +ELLIPSIS
        out.bvh: 20 frames, largest joint error ... converged 20/20
        0
    """
    import numpy as np

    import fastkin

    source = fastkin.io.load_bvh(skeleton_file)
    skeleton = source.skeleton
    try:
        targets = np.load(positions, allow_pickle=False)
    except ValueError as error:  # e.g. an object array, which would need pickle
        raise ValueError(f"{positions}: not a plain numeric .npy ({error})") from None
    if targets.ndim != 3 or targets.shape[1:] != (skeleton.num_joints, 3):
        raise ValueError(
            f"{positions}: positions must have shape (frames, {skeleton.num_joints}, 3) for {skeleton_file.name}, got {targets.shape}"
        )
    targets = targets.astype(np.float64)
    chunk = 100  # frames per call: each chunk starts from the last one's solution
    rotations, roots, errors, converged = [], [], [], []
    init = init_root = None
    for start in range(0, len(targets), chunk):
        result = fastkin.ik.solve_sequence(skeleton, targets[start : start + chunk], smoothness=smoothness, init=init,
                                           init_root=init_root)
        rotations.append(result.rotations)
        roots.append(result.root_translation)
        errors.append(result.error)
        converged.append(result.converged)
        init, init_root = result.rotations[-1], result.root_translation[-1]
        if progress:
            done = min(start + chunk, len(targets))
            bar = "#" * (30 * done // len(targets))
            print(f"\rfastkin ik: [{bar:<30}] {done}/{len(targets)} frames", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    motion = fastkin.Motion(skeleton, np.concatenate(rotations), np.concatenate(roots), fps or source.fps)
    fastkin.io.save_bvh(output, motion)
    joint_error = np.concatenate(errors)
    ok = np.concatenate(converged)
    print(f"{output.name}: {len(motion)} frames, largest joint error {joint_error.max():.3g} (median {np.median(joint_error):.3g}), "
          f"converged {int(ok.sum())}/{len(ok)}")
    return 0 if ok.all() else 1


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
