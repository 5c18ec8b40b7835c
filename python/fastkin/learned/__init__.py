"""Learned inverse kinematics: models that turn joint positions into local
rotations in one forward pass, with the data pipeline and training loop that
make them (see docs/learned.md). Needs torch.

Example:
    >>> import fastkin
    >>> from fastkin import learned
    >>> walk = fastkin.data.default_motion()  # CMU subject 12: never seen in training
    >>> model = learned.load_pretrained("ikgat-cmu")
    >>> rotations, root = model.predict(walk.positions(), skeleton=walk.skeleton)
    >>> rotations.shape, learned.rotation_errors(rotations, walk.rotations).shape  # errors in degrees
    ((524, 38, 4), (524, 38))
"""

from .attention_block import PreNormBlock
from .augment import Augmentation, Batch, aligned_frames, augmented_batch, height, mirror_pairs, up_axis
from .checkpoint import load_model, load_weights, save_model, skeleton_from_json, skeleton_to_json
from .conform import CMU_ASF_TO_BVH, Conformed, conform
from .dataset import MotionDataset, Take, find_motion_files, take_and_subject
from .evaluate import leaves, mpjpe, rotation_errors, twist_errors
from .fast_inference import CompiledIKGAT
from .ikgat import IKGAT, hop_distances
from .pose_to_rotation import (EDGE_TYPES, PoseToRotation, SkeletonGraph, correction_kinds, joint_inputs, pad_inputs,
                               swing_estimate, twist_part)
from .p2r_data import Clip, P2RBatch, load_clips, p2r_batch, procedural_clip
from .p2r_inference import PreparedPoseToRotation
from .p2r_train import P2RConfig, evaluate_p2r, train_p2r
from .pretrained import PRETRAINED, load_pretrained
from .report import run_benchmark
from .train import TrainConfig, ik_loss, train_ikgat, validate

__all__ = [
    "Augmentation", "Batch", "aligned_frames", "augmented_batch", "height", "mirror_pairs", "up_axis",
    "load_model", "load_weights", "save_model", "skeleton_from_json", "skeleton_to_json",
    "CMU_ASF_TO_BVH", "Conformed", "conform",
    "MotionDataset", "Take", "find_motion_files", "take_and_subject",
    "leaves", "mpjpe", "rotation_errors", "twist_errors",
    "IKGAT", "hop_distances", "CompiledIKGAT",
    "PreNormBlock", "PoseToRotation", "SkeletonGraph", "EDGE_TYPES", "joint_inputs", "pad_inputs", "swing_estimate",
    "correction_kinds", "twist_part",
    "Clip", "P2RBatch", "load_clips", "p2r_batch", "procedural_clip", "P2RConfig", "evaluate_p2r", "train_p2r",
    "PreparedPoseToRotation",
    "PRETRAINED", "load_pretrained", "run_benchmark",
    "TrainConfig", "ik_loss", "train_ikgat", "validate",
]  # fmt: skip
