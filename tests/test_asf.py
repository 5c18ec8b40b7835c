"""CMU ASF/AMC reading: a hand-computed case, cross-format agreement with the
BVH conversions of the same takes, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import fastkin
from conftest import shared_data

TINY_ASF = """# tiny test skeleton
:version 1.10
:name test
:units
  mass 1.0
  length 1.0
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name arm
     direction 1 0 0
     length 2
     axis 0 0 90 XYZ
    dof rx
  end
:hierarchy
  begin
    root arm
  end
"""

TINY_AMC = """:FULLY-SPECIFIED
:DEGREES
1
root 1 2 3 0 0 0
arm 0
2
root 1 2 3 0 0 0
arm 90
"""

CMU_TO_BVH = dict(
    root="Hips", lhipjoint="LHipJoint", lfemur="LeftUpLeg", ltibia="LeftLeg", lfoot="LeftFoot", ltoes="LeftToeBase",
    rhipjoint="RHipJoint", rfemur="RightUpLeg", rtibia="RightLeg", rfoot="RightFoot", rtoes="RightToeBase",
    lowerback="LowerBack", upperback="Spine", thorax="Spine1", lowerneck="Neck", upperneck="Neck1", head="Head",
    lclavicle="LeftShoulder", lhumerus="LeftArm", lradius="LeftForeArm", lwrist="LeftHand", lhand="LeftFingerBase",
    lfingers="LFingers", lthumb="LThumb", rclavicle="RightShoulder", rhumerus="RightArm", rradius="RightForeArm",
    rwrist="RightHand", rhand="RightFingerBase", rfingers="RFingers", rthumb="RThumb",
)  # fmt: skip


def write_pair(folder, asf=TINY_ASF, amc=TINY_AMC):
    (folder / "t.asf").write_text(asf)
    (folder / "t.amc").write_text(amc)
    return folder / "t.asf", folder / "t.amc"


def test_bone_frame_axis_by_hand(tmp_path):
    """arm: axis C = Rz(90), dof rx = 90: C Rx(90) C^-1 is 90 degrees about
    C x = +y, so the bone (2, 0, 0) ends at (0, 0, -2) from the root (1, 2, 3)."""
    motion = fastkin.io.load_asf_amc(*write_pair(tmp_path), fps=60)
    assert motion.skeleton.names == ("root", "arm", "arm_end")
    assert motion.fps == 60 and len(motion) == 2
    positions = motion.positions()
    np.testing.assert_allclose(positions[0], [[1, 2, 3], [1, 2, 3], [3, 2, 3]], atol=1e-12)
    np.testing.assert_allclose(positions[1], [[1, 2, 3], [1, 2, 3], [1, 2, 1]], atol=1e-12)


@pytest.mark.parametrize("take", ["01_01", "01_03"])
def test_agrees_with_the_bvh_conversion_of_the_same_take(take):
    asf = shared_data() / "train" / "cmu-asfamc" / "subjects" / "01" / "01.asf"
    bvh = shared_data() / "train" / "cmu-bvh" / f"{take}.bvh"
    if not (asf.exists() and bvh.exists()):
        pytest.skip("shared data not found")
    ours = fastkin.io.load_asf_amc(asf, asf.with_name(f"{take}.amc"))
    theirs = fastkin.io.load_bvh(bvh)
    assert len(theirs) == len(ours) + 1  # the conversion inserts a reference pose as frame 0
    a = [ours.skeleton.index(n) for n in CMU_TO_BVH]
    b = [theirs.skeleton.index(n) for n in CMU_TO_BVH.values()]
    ours_p, theirs_p = ours.positions()[:, a], theirs.positions()[1:, b]
    height = float(np.ptp(ours_p[..., 1]))
    # The conversion drops the thorax and wrist bone lengths (Neck and the
    # hands sit at the start of those bones), so only joints whose rest
    # positions coincide in both files can be compared.
    rest_a = fastkin.fk_batch(ours.skeleton, ours.skeleton.rest_pose())[1][a]
    rest_b = fastkin.fk_batch(theirs.skeleton, theirs.skeleton.rest_pose())[1][b]
    same = np.linalg.norm(rest_a - rest_b, axis=-1) < 1e-3 * height
    assert same.sum() >= 14, list(np.array(list(CMU_TO_BVH))[same])
    error = np.linalg.norm(ours_p[:, same] - theirs_p[:, same], axis=-1)
    assert error.max() <= 0.01 * height, f"max error {error.max() / height:.2%} of the height"


@pytest.mark.parametrize(
    "asf_edit, amc_edit, match",
    [
        (lambda t: t.replace("root arm", "root hand"), None, "hierarchy"),
        (lambda t: t.replace("     length 2\n", ""), None, "lacks 'length'"),
        (lambda t: t.replace("direction 1 0 0", "direction 1 zero 0"), None, r"t.asf:17: direction must be a number"),
        (lambda t: t.replace("dof rx", "dof rw"), None, r"t.asf:20: unknown dof 'rw'"),
        (lambda t: t.replace("axis 0 0 90 XYZ", "axis 0 0 XYZ"), None, r"t.asf:19: axis must be a number"),
        (None, lambda t: t.replace("arm 90", "arm 90 1"), "every frame|truncated|values per frame"),
        (None, lambda t: t.replace("\n2\n", "\n5\n"), "not consecutive"),
        (None, lambda t: t.replace("arm 90", "arm x"), r"t.amc:8: malformed or non-finite number 'x'"),
        (None, lambda t: t.replace("arm 0", "leg 0"), "not in the skeleton"),
        (None, lambda t: ":FULLY-SPECIFIED\n", "no frames"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, asf_edit, amc_edit, match):
    asf = asf_edit(TINY_ASF) if asf_edit else TINY_ASF
    amc = amc_edit(TINY_AMC) if amc_edit else TINY_AMC
    with pytest.raises(fastkin.io.FormatError, match=match):
        fastkin.io.load_asf_amc(*write_pair(tmp_path, asf, amc))


def cmu_takes():
    folder = shared_data() / "train" / "cmu-asfamc" / "subjects"
    return sorted(folder.glob("*/*.amc")) if folder.is_dir() else []


@pytest.mark.parametrize("amc", cmu_takes(), ids=lambda p: p.name)
def test_every_cmu_take_loads(amc):
    """Frame count, joint count and the first frame's root position against
    the text itself."""
    asf = next(amc.parent.glob("*.asf"))
    motion = fastkin.io.load_asf_amc(asf, amc)
    lines = amc.read_text().split("\n")
    frame_numbers = [line for line in lines if line.strip().isdigit()]
    assert len(motion) == len(frame_numbers)
    bones = sum(1 for line in asf.read_text().split("\n") if line.split()[:1] == ["name"])
    assert motion.skeleton.num_joints >= bones + 1
    first_root = next(line for line in lines if line.startswith("root")).split()[1:4]
    np.testing.assert_allclose(motion.positions()[0, 0], [float(v) for v in first_root], atol=1e-9)
