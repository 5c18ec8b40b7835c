"""Training and evaluating PoseToRotation: batches of many skeletons (real
clips and generated ones), a geodesic loss on world rotations, and a
leave-skeleton-out evaluation against analytic IK given the same reference."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..ik import analytic
from ..rotations import geodesic_angle, matrix_to_quat
from .checkpoint import save_model, write_atomically
from .evaluate import leaves, rotation_errors
from .p2r_data import Clip, load_clips, p2r_batch, procedural_clip
from .pose_to_rotation import PoseToRotation, _world_to_local, joint_inputs
from .train import _learning_rate, _plain

__all__ = ["P2RConfig", "train_p2r", "evaluate_p2r"]


@dataclass
class P2RConfig:
    """Settings of :func:`train_p2r` (recorded with the model).

    Example:
        >>> from fastkin.learned import P2RConfig
        >>> P2RConfig(steps=100).model["layers"]
        4
    """

    steps: int = 6000
    skeletons: int = 8  # clips per batch
    frames: int = 16  # poses per clip
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    fps: float = 30.0
    procedural: int = 200  # generated clips added to the real ones
    no_reference: float = 0.1  # share of batches whose reference is the rest pose
    seed: int = 0
    validate_every: int = 500
    model: dict = field(default_factory=lambda: dict(width=64, layers=4, heads=4, max_hops=8, expansion=2))


def evaluate_p2r(model: Any, clip: Clip, reference_frame: int = 0, step: int = 1) -> dict:
    """Mean geodesic error (degrees) of local rotations on every ``step``-th
    frame of ``clip``: the model with the reference pair (the clip's frame
    ``reference_frame``) and without it (rest pose as reference), and
    :func:`fastkin.ik.analytic` with the same reference for twist and
    without; each over all joints and (``name/non_leaf``) over the joints
    with children, whose rotations the positions show.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import Clip, PoseToRotation, evaluate_p2r
        >>> clip = Clip.of("walk", fastkin.data.default_motion()[:20])
        >>> sorted(evaluate_p2r(PoseToRotation(width=16, layers=2), clip))[:5]
        ['analytic', 'analytic/non_leaf', 'analytic_no_reference', 'analytic_no_reference/non_leaf', 'frames']
    """
    frames = np.arange(0, len(clip), step)
    skeleton = clip.skeleton
    moving = ~leaves(skeleton)  # joints with children: positions show their rotation
    truth = clip.rotations[frames]
    positions = torch.as_tensor(clip.positions[frames])
    graph = model._graph(skeleton)
    parents = np.asarray(skeleton.parents)
    rest = torch.as_tensor(clip.rest_positions)
    rest_world = torch.as_tensor(clip.rest_frames)
    result: dict = {"frames": int(len(frames))}

    def score(name: str, rotations: Any) -> None:
        errors = rotation_errors(rotations, truth)
        result[name], result[name + "/non_leaf"] = float(errors.mean()), float(errors[:, moving].mean())

    for name, reference_positions, reference_world in (
        ("learned", torch.as_tensor(clip.positions[reference_frame]), torch.as_tensor(clip.frames[reference_frame])),
        ("learned_no_reference", rest, rest_world),
    ):
        with torch.no_grad():
            delta = model(*joint_inputs(graph, parents, rest, reference_positions, positions))
            local = _world_to_local(torch.tensor(parents), delta @ reference_world)
        score(name, matrix_to_quat(local.double().numpy()))
    for name, reference in (("analytic", clip.rotations[reference_frame]), ("analytic_no_reference", None)):
        score(name, analytic(skeleton, clip.positions[frames].astype(np.float64), reference=reference)[0])
    return result


def train_p2r(data: Sequence[Any], out: Any, config: P2RConfig = P2RConfig(), *, exclude: Sequence[str] = (),
              holdout: Sequence[Any] = (), progress: bool = True) -> dict:
    """Trains a :class:`fastkin.learned.PoseToRotation` on every motion under
    ``data`` (files whose stem is in ``exclude`` left out) plus
    ``config.procedural`` generated clips, and writes ``out/model.{pt,json}``
    and ``out/log.jsonl``. ``holdout`` files are evaluated with
    :func:`evaluate_p2r` every ``config.validate_every`` steps (never
    trained on). Returns the last evaluation.

    Example (a few steps of a tiny model):
        >>> import tempfile, fastkin
        >>> from fastkin.learned import P2RConfig, train_p2r
        >>> config = P2RConfig(steps=2, skeletons=2, frames=2, procedural=2, validate_every=2,
        ...                    model=dict(width=16, layers=2, heads=2, max_hops=4, expansion=1))
        >>> last = train_p2r([fastkin.data.path("cmu_12_01_walk.bvh")], tempfile.mkdtemp(), config, progress=False)
        >>> last["step"]
        2
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    clips = load_clips(data, fps=config.fps, exclude=exclude, progress=progress)
    clips += [procedural_clip(rng, frames=90, fps=config.fps) for _ in range(config.procedural)]
    held = load_clips(holdout, fps=config.fps) if holdout else []
    if progress:
        print(f"train_p2r: {len(clips)} clips ({config.procedural} generated), {len(held)} held out",
              file=sys.stderr, flush=True)
    model = PoseToRotation(**config.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    graphs: dict = {}
    last: dict = {}
    clock = time.perf_counter()
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, config)
        batch = p2r_batch(clips, rng, config.skeletons, config.frames, graphs=graphs,
                          max_hops=config.model["max_hops"], use_reference=rng.random() >= config.no_reference)
        model.train()
        predicted = model(*batch.inputs) @ batch.reference_frames
        valid = batch.inputs[3]
        # Squared chordal distance, 8 sin²(angle / 2): most joints' estimates
        # are exact, and a loss linear in the angle (the median's) would keep
        # the sparse corrections the rest need at zero.
        loss = ((predicted[valid] - batch.frames[valid]) ** 2).sum((-1, -2)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        done = step + 1
        with torch.no_grad():
            world_deg = float(np.degrees(geodesic_angle(predicted[valid], batch.frames[valid]).mean().item()))
        if progress and (done % 50 == 0 or done == config.steps):
            rate = done / (time.perf_counter() - clock)
            print(f"train p2r: step {done}/{config.steps} world {world_deg:.2f} deg | "
                  f"{rate:.1f} steps/s, {(config.steps - done) / max(rate, 1e-9) / 60:.0f} min left",
                  file=sys.stderr, flush=True)
        if done % config.validate_every == 0 or done == config.steps:
            model.eval()
            last = {"step": done, "world_deg": world_deg}
            for clip in held:
                scores = evaluate_p2r(model, clip, step=max(1, len(clip) // 200))
                last.update({f"{clip.name}/{k}": v for k, v in scores.items()})
            line = json.dumps(last)
            if progress:
                print(f"validate: {line}", file=sys.stderr, flush=True)
            with open(out / "log.jsonl", "a") as log:
                log.write(line + "\n")
    record = {"train": _plain(asdict(config)), "clips": sorted({c.name for c in clips}), "excluded": list(exclude),
              "holdout": [c.name for c in held], "parameters": model.num_parameters(), "validation": last}
    save_model(model, out / "model", record)
    write_atomically(out / "record.json", lambda f: f.write(json.dumps(record, indent=1).encode()))
    return last
