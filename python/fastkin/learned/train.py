"""Training IK-GAT with fastkin.fk_batch in the loop: geodesic loss on the
bone-aligned world rotations and on local rotations, plus an FK-consistency
term on the positions the predicted rotations produce. Runs alone or under
``torchrun`` (DistributedDataParallel: gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..bone_frames import bone_world_to_local, local_to_bone_world
from ..kinematics import fk_batch
from ..rotations import geodesic_angle, quat_to_matrix
from ..skeleton import Skeleton
from .augment import Augmentation, Batch, augmented_batch
from .checkpoint import load_weights, save_model, write_atomically
from .dataset import MotionDataset
from .evaluate import leaves, rotation_errors

__all__ = ["TrainConfig", "train_ikgat", "ik_loss", "validate"]


@dataclass
class TrainConfig:
    """Settings of :func:`train_ikgat` (all recorded beside the weights).

    Example:
        >>> from fastkin.learned import TrainConfig
        >>> TrainConfig(steps=100).model["width"]
        64
    """

    steps: int = 20000
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 300
    fk_weight: float = 1.0
    local_weight: float = 0.5
    fps: float = 60.0
    seed: int = 0
    validate_every: int = 1000
    validation_frames: int = 2000
    holdout_takes: Sequence[str] = ("01_01",)
    holdout_subjects: Sequence[str] = ()
    model: dict = field(default_factory=lambda: dict(width=64, layers=4, heads=4, hops=3, expansion=2))
    augmentation: dict = field(default_factory=lambda: asdict(Augmentation()))


def ik_loss(model: Any, batch: Batch, fk_weight: float = 1.0, local_weight: float = 0.5) -> tuple[Any, dict]:
    """The training loss of a batch and its parts (floats, for logging).

    Geodesic angle (radians) between predicted and true bone-aligned world
    rotations, plus ``local_weight`` times that of the local rotations, plus
    ``fk_weight`` times the mean joint distance between
    :func:`fastkin.fk_batch` of the predicted rotations and the true
    positions, over the mean bone length.

    Example:
        >>> import numpy as np, fastkin
        >>> from fastkin.learned import IKGAT, MotionDataset, augmented_batch, ik_loss
        >>> walk = fastkin.data.default_motion()
        >>> data = MotionDataset([fastkin.data.path("cmu_12_01_walk.bvh")], walk.skeleton, progress=False)
        >>> loss, parts = ik_loss(IKGAT(walk.skeleton, width=8, layers=1), augmented_batch(data, 4, np.random.default_rng(0)))
        >>> loss.backward()
        >>> sorted(parts)
        ['fk', 'local_deg', 'loss', 'world_deg']
    """
    truth = quat_to_matrix(batch.rotations)
    predicted_world = model(batch.inputs)
    world = geodesic_angle(predicted_world, local_to_bone_world(batch.skeleton, truth, frames=batch.frames)).mean()
    predicted_local = bone_world_to_local(batch.skeleton, predicted_world, frames=batch.frames)
    local = geodesic_angle(predicted_local, truth).mean()
    positions = fk_batch(batch.skeleton, predicted_local, offsets=batch.offsets)[1]
    bone = batch.offsets.norm(dim=-1).mean()
    fk = (positions - batch.positions).norm(dim=-1).mean() / bone
    loss = world + local_weight * local + fk_weight * fk
    return loss, {"loss": loss.item(), "world_deg": math.degrees(world.item()),
                  "local_deg": math.degrees(local.item()), "fk": fk.item()}


def validate(model: Any, dataset: MotionDataset, frames: int | None = None) -> dict:
    """Mean geodesic error in degrees of ``model.predict`` on every take of
    ``dataset`` (at most ``frames`` evenly spaced frames in all), over all
    joints and over joints with children.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import IKGAT, MotionDataset, validate
        >>> walk = fastkin.data.default_motion()
        >>> data = MotionDataset([fastkin.data.path("cmu_12_01_walk.bvh")], walk.skeleton, progress=False)
        >>> sorted(validate(IKGAT(walk.skeleton, width=8, layers=1), data, frames=20))
        ['frames', 'geodesic_deg', 'geodesic_non_leaf_deg']
    """
    total = len(dataset)
    errors = []
    for t, take in enumerate(dataset.takes):
        step = 1 if frames is None else max(1, math.ceil(total / frames))
        positions = dataset.positions(t)[::step]
        skeleton = dataset.skeletons[take.skeleton]
        rotations, _ = model.predict(positions.astype(np.float64), skeleton=skeleton)
        errors.append(rotation_errors(rotations, take.rotations[::step]))
    error = np.concatenate(errors)
    inner = ~leaves(dataset.skeleton)
    return {"frames": int(len(error)), "geodesic_deg": float(error.mean()),
            "geodesic_non_leaf_deg": float(error[:, inner].mean())}


def train_ikgat(data: Sequence[Any], skeleton: Skeleton, out: Any, config: TrainConfig = TrainConfig(), *,
                holdout_data: Sequence[Any] = (), resume: bool = False, progress: bool = True) -> dict:
    """Trains an :class:`fastkin.learned.IKGAT` for ``skeleton`` on the motion
    under ``data`` and writes ``out/model.pt`` + ``out/model.json`` (weights
    and description), ``out/checkpoint.pt`` (to resume) and
    ``out/log.jsonl`` (one line per validation).

    Takes named in ``config.holdout_takes`` / subjects in
    ``config.holdout_subjects``, and every file of ``holdout_data``, are never
    trained on; they form the validation set. Under ``torchrun`` each process
    draws its own batches and gradients are averaged; only rank 0 validates
    and writes. Returns the last validation.

    Example (a few steps of a tiny model):
        >>> import tempfile, fastkin
        >>> from fastkin.learned import TrainConfig, load_model, train_ikgat
        >>> walk = fastkin.data.path("cmu_12_01_walk.bvh")
        >>> config = TrainConfig(steps=2, batch_size=4, validate_every=2, holdout_takes=(),
        ...                      model=dict(width=8, layers=1, heads=2, hops=2, expansion=2))
        >>> out = tempfile.mkdtemp()
        >>> last = train_ikgat([walk], fastkin.io.load_bvh(walk).skeleton, out, config, progress=False)
        >>> last["step"], load_model(out + "/model").config["width"]
        (2, 8)
    """
    import torch

    from .ikgat import IKGAT

    rank, world, device = _distributed()
    out = Path(out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng([config.seed, rank])
    say = progress and rank == 0
    train_set = MotionDataset(data, skeleton, fps=config.fps, holdout_takes=config.holdout_takes,
                              holdout_subjects=config.holdout_subjects, split="train", progress=say)
    held = [MotionDataset(data, skeleton, fps=30, holdout_takes=config.holdout_takes,
                          holdout_subjects=config.holdout_subjects, split="holdout", progress=False)
            ] if (config.holdout_takes or config.holdout_subjects) else []
    held += [MotionDataset(holdout_data, skeleton, fps=30, progress=False)] if holdout_data else []
    model = IKGAT(skeleton, **config.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    start = 0
    if resume and (out / "checkpoint.pt").exists():
        state = load_weights(out / "checkpoint.pt")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        rng = np.random.default_rng([config.seed, rank, start])
    trained: Any = model
    if world > 1:
        trained = torch.nn.parallel.DistributedDataParallel(model)
    augmentation = Augmentation(**config.augmentation)
    last: dict = {}
    clock = time.perf_counter()
    for step in range(start, config.steps):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, config)
        batch = augmented_batch(train_set, config.batch_size, rng, augmentation)
        if device.type != "cpu":
            batch = batch._replace(**{k: getattr(batch, k).to(device) for k in ("rotations", "offsets", "positions",
                                                                                   "inputs")})
        model.train()
        loss, parts = ik_loss(trained, batch, config.fk_weight, config.local_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        done = step + 1
        if say and (done % 50 == 0 or done == config.steps):
            rate = (done - start) / (time.perf_counter() - clock)
            eta = (config.steps - done) / max(rate, 1e-9)
            print(f"train: step {done}/{config.steps} loss {parts['loss']:.4f} world {parts['world_deg']:.2f} deg "
                  f"local {parts['local_deg']:.2f} deg fk {parts['fk']:.4f} | {rate:.1f} steps/s, "
                  f"{eta / 60:.0f} min left", file=sys.stderr, flush=True)
        if rank == 0 and (done % config.validate_every == 0 or done == config.steps):
            model.eval()
            with torch.no_grad():
                last = {"step": done, **parts}
                for k, dataset in enumerate(held):
                    last.update({f"holdout{k}_{name}": value
                                 for name, value in validate(model, dataset, config.validation_frames).items()})
            line = json.dumps(last)
            if say:
                print(f"validate: {line}", file=sys.stderr, flush=True)
            with open(out / "log.jsonl", "a") as log:
                log.write(line + "\n")
            write_atomically(out / "checkpoint.pt", lambda f: torch.save(
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": done}, f))
    if rank == 0:
        held_names = [[t.name for t in d.takes] for d in held]
        save_model(model.cpu(), out / "model", {"train": _plain(asdict(config)), "holdout_takes": held_names,
                                                 "train_takes": [t.name for t in train_set.takes],
                                                 "parameters": model.num_parameters(), "validation": last})
    if world > 1:
        torch.distributed.destroy_process_group()
    return last


def _learning_rate(step: int, config: Any) -> float:
    """Linear warm-up, then cosine decay to 2%; ``config`` has
    ``learning_rate``, ``warmup`` and ``steps`` (TrainConfig, P2RConfig)."""
    if step < config.warmup:
        return config.learning_rate * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def _distributed() -> tuple[int, int, Any]:
    """(rank, world size, device); joins the process group under torchrun."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device("cpu")
    rank = int(os.environ["RANK"])
    cuda = torch.cuda.is_available()
    torch.distributed.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def _plain(value: Any) -> Any:
    """JSON-ready copy (tuples become lists)."""
    return json.loads(json.dumps(value, default=list))
