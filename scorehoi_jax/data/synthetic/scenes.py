"""Interaction types: which objects suit them, where the contacts are, object placement.

Each interaction builds a ``Scene``: the object and its world pose, and the
inverse-kinematics problem (poses.PoseProblem) the body must satisfy. Contact
targets come from the object's own surface samples (points and normals of the
mesh), so they sit on the surface whatever the object's shape.

Support rule (never floating): an object either rests on the floor (its
lowest point at y = 0) or is held — carried in both hands, on an upturned
palm, or hanging from a gripped handle; the generator rejects a solution
whose hands ended up away from a held object (generator.py).

World frame: metres, +Y up, floor y = 0; the person starts at the origin
facing +Z, their left is +X.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scorehoi_jax import body as body_lib
from scorehoi_jax.data.synthetic import poses
from scorehoi_jax.objects import ObjectTemplate

_J = {n: i for i, n in enumerate(body_lib.SMPLH_JOINT_NAMES)}
_SKIN = 0.012  # Palm-target offset from the object surface along its normal.
# A weak pull of the pelvis towards x = z = 0, where the scene placed the person relative to the
# object: without it, reaching for a narrow object can end with the legs straddling it.
_ANCHOR = np.array([0.05, 0.0, 0.05], np.float32)

# interaction -> object categories that suit it.
INTERACTIONS: dict[str, tuple[str, ...]] = {
    "carry": ("boxlarge", "boxmedium", "boxsmall", "boxtiny", "boxlong", "plasticcontainer", "toolbox",
              "suitcase", "backpack", "trashbin", "yogaball", "basketball", "monitor", "stool", "yogamat"),
    "lift": ("boxlarge", "boxmedium", "boxlong", "plasticcontainer", "trashbin", "suitcase", "yogaball"),
    "hold_one_hand": ("basketball", "boxtiny", "boxsmall", "keyboard", "toolbox", "backpack", "suitcase"),
    "sit": ("chairwood", "chairblack", "stool", "yogaball", "boxlarge"),
    "push": ("tablesquare", "tablesmall", "boxlarge", "boxlong", "suitcase", "chairwood", "trashbin",
             "chairblack"),
    "lean": ("tablesquare", "tablesmall", "boxlarge", "chairwood", "suitcase"),
    "stand_beside": ("backpack", "boxlarge", "boxlong", "boxmedium", "chairblack", "chairwood", "monitor",
                     "plasticcontainer", "stool", "suitcase", "tablesmall", "tablesquare", "toolbox",
                     "trashbin", "yogaball", "yogamat"),
    "kick": ("yogaball", "basketball"),
    # Added for the capture layout (pose diversity); the centred layout draws from LEGACY_INTERACTIONS only.
    "bend": ("boxmedium", "boxsmall", "boxtiny", "basketball", "toolbox", "plasticcontainer", "trashbin",
             "backpack", "yogamat", "keyboard"),
    "squat": ("boxlarge", "boxmedium", "boxsmall", "boxtiny", "basketball", "toolbox", "plasticcontainer",
              "backpack", "trashbin", "yogaball"),
    "overhead": ("boxmedium", "boxsmall", "boxtiny", "basketball", "yogaball", "backpack", "yogamat", "keyboard"),
}
LEGACY_INTERACTIONS = ("carry", "lift", "hold_one_hand", "sit", "push", "lean", "stand_beside", "kick")
# Relative frequencies (carrying/holding dominate BEHAVE-style data).
INTERACTION_WEIGHTS = {"carry": 3.0, "lift": 1.5, "hold_one_hand": 2.0, "sit": 2.0, "push": 1.5, "lean": 1.0,
                       "stand_beside": 1.0, "kick": 0.7, "bend": 1.2, "squat": 1.2, "overhead": 1.0}
# What the body does, per frame (a finer label than the interaction: holding a handle at the side and
# an object on the palm are both hold_one_hand).
POSE_CLASSES = ("carry_front", "lift", "hold", "carry_side", "sit", "push", "lean", "stand", "kick", "bend",
                "squat", "arms_overhead")


@dataclasses.dataclass
class Scene:
  interaction: str
  obj: ObjectTemplate
  obj_rot: np.ndarray  # [3, 3] canonical -> world.
  obj_trans: np.ndarray  # [3]
  problem: poses.PoseProblem
  held: bool  # True: supported by the hands; False: resting on the floor.
  hands_used: tuple[int, ...]  # Which palms (0 left, 1 right) must touch the object.
  pose_class: str = ""  # One of POSE_CLASSES.


def yaw_matrix(angle: float) -> np.ndarray:
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], np.float32)


def _world_surface(obj: ObjectTemplate, rot, trans):
  return obj.surface_points @ rot.T + trans, obj.surface_normals @ rot.T


def _surface_point(points, normals, direction, near, min_dot=0.6):
  """The surface sample facing ``direction`` that is nearest to ``near``."""
  ok = normals @ direction > min_dot
  if not ok.any():
    ok = normals @ direction > 0.0
  idx = np.nonzero(ok)[0]
  k = idx[np.argmin(np.linalg.norm(points[idx] - near, axis=1))]
  return points[k], normals[k]


def _style(rng, kind: str, seat_height: float = 0.45) -> np.ndarray:
  """A randomised base pose [22, 3] (axis-angle) for an interaction."""
  aa = np.zeros((poses.NUM_BODY_JOINTS, 3), np.float32)
  n = lambda s: rng.normal(0.0, s)
  for name, s in (("spine1", 0.08), ("spine2", 0.06), ("spine3", 0.06), ("neck", 0.15), ("head", 0.2)):
    aa[_J[name]] = (n(s), n(s), n(s / 2))
  aa[_J["head"], 0] += 0.15  # Look slightly down, towards the object.
  for side, sg in (("left", 1.0), ("right", -1.0)):
    # Lower the arm from the A-pose (about the forward axis) by a random amount.
    aa[_J[f"{side}_shoulder"]] = (n(0.2), n(0.2), -sg * rng.uniform(0.1, 0.55))
    aa[_J[f"{side}_hip"]] = (n(0.08), n(0.08), sg * abs(n(0.05)))
  if kind in ("sit",):
    # Thighs level on a chair-height seat, sloping down on a higher one (a yoga ball).
    open_up = np.clip((seat_height - 0.47) * 2.5, 0.0, 0.7)
    for side in ("left", "right"):
      aa[_J[f"{side}_hip"], 0] = -1.5 + open_up + n(0.1)
      aa[_J[f"{side}_knee"], 0] = 1.5 - 0.5 * open_up + n(0.15)
  elif kind in ("lift",):
    for side in ("left", "right"):
      aa[_J[f"{side}_hip"], 0] = -1.2 + n(0.2)
      aa[_J[f"{side}_knee"], 0] = 1.3 + n(0.2)
    aa[_J["spine1"], 0] += 0.4
  elif kind in ("bend",):  # Reaching down to something low: bend at the hips, knees soft.
    for side in ("left", "right"):
      aa[_J[f"{side}_hip"], 0] = -0.8 + n(0.15)
      aa[_J[f"{side}_knee"], 0] = 0.4 + n(0.15)
    aa[_J["spine1"], 0] += 0.3
    aa[_J["spine2"], 0] += 0.15
  elif kind in ("kick",):
    aa[_J["right_hip"], 0] = -0.6
    aa[_J["right_knee"], 0] = 0.5
  elif kind in ("squat",):  # Deep knee bend, trunk leaning forward over the knees.
    for side, sg in (("left", 1.0), ("right", -1.0)):
      aa[_J[f"{side}_hip"]] = (-1.9 + n(0.15), n(0.05), sg * rng.uniform(0.1, 0.35))
      aa[_J[f"{side}_knee"], 0] = 2.1 + n(0.1)
    aa[_J["spine1"], 0] += 0.25
  elif kind in ("overhead",):  # Both arms up (the rest pose is an A-pose: +z raises the left arm).
    for side, sg in (("left", 1.0), ("right", -1.0)):
      aa[_J[f"{side}_collar"]] = (0.0, 0.0, sg * 0.35)
      aa[_J[f"{side}_shoulder"]] = (n(0.1), n(0.1), sg * rng.uniform(1.5, 1.9))
    aa[_J["head"], 0] -= 0.35  # Look up at the object.
  return aa


def _problem(rng, sb: poses.SolverBody, betas, style, stand_y, obj, rot, trans, **terms) -> poses.PoseProblem:
  prior_w = np.full(poses.NUM_BODY_JOINTS, 0.3, np.float32)
  prior_w[0] = 0.05  # Global orientation: the scene constrains it.
  for name in ("spine1", "spine2", "spine3", "neck", "head"):
    prior_w[_J[name]] = 1.0
  for name in ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_collar", "right_collar"):
    prior_w[_J[name]] = 0.1
  init = style + rng.normal(0.0, 0.02, style.shape).astype(np.float32)
  base = dict(
      betas=betas, init_aa=init, init_trans=np.array([0.0, stand_y, 0.0], np.float32),
      prior_aa=style, prior_w=prior_w, hand_rot=poses.finger_rotations(0.25, 0.3),
      hand_target=np.zeros((2, 3), np.float32), hand_w=np.zeros(2, np.float32),
      palm_dir=np.tile(np.array([0, 1, 0], np.float32), (2, 1)), palm_w=np.zeros(2, np.float32),
      pelvis_target=np.zeros(3, np.float32), pelvis_w=np.zeros(3, np.float32),
      toe_target=np.zeros((2, 3), np.float32), toe_w=np.zeros(2, np.float32),
      sole_w=np.ones(2, np.float32), balance_w=np.float32(20.0),
      obj_rot=rot, obj_trans=trans, sdf=obj.sdf, pen_w=np.float32(1.0))
  base.update(terms)
  return poses.PoseProblem(**{k: np.asarray(v, np.float32) if k != "sdf" else v for k, v in base.items()})


def _floor_offset(obj: ObjectTemplate) -> float:
  """Translation along y that puts the object's lowest point on the floor."""
  return float(-obj.vertices[:, 1].min())


def _bbox(obj, rot):
  v = obj.vertices @ rot.T
  return v.min(0), v.max(0)


# ------------------------------------------------------------------------------------------------
# The interactions. Each returns a Scene; ``body`` has the shaped rest joints and stand height.
# ------------------------------------------------------------------------------------------------


def _carry(rng, obj, sb, betas, stand_y, shoulder_y, pelvis_y):
  rot = yaw_matrix(rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.08))
  lo, hi = _bbox(obj, rot)
  width = hi[0] - lo[0]
  if width > 0.75:  # Too wide to hold by the sides; carry it the other way round.
    rot = yaw_matrix(np.pi / 2) @ rot
    lo, hi = _bbox(obj, rot)
  centre_y = rng.uniform(pelvis_y + 0.05, shoulder_y - 0.15) - 0.5 * (lo[1] + hi[1])
  z = 0.14 - lo[2] + rng.uniform(0.0, 0.1)
  trans = np.array([rng.normal(0, 0.02), centre_y, z], np.float32)
  pts, nrm = _world_surface(obj, rot, trans)
  mid = 0.5 * (lo + hi) + trans
  grab_y = mid[1] + rng.uniform(-0.2, 0.25) * (hi[1] - lo[1])
  targets, dirs = [], []
  for sx in (1.0, -1.0):  # Left hand on the +X side.
    near = np.array([mid[0] + sx * width, grab_y, mid[2] + rng.uniform(-0.15, 0.1) * (hi[2] - lo[2])])
    p, n = _surface_point(pts, nrm, np.array([sx, 0.0, 0.0]), near)
    targets.append(p + _SKIN * n)
    dirs.append(-n)
  style = _style(rng, "carry")
  for k, side in enumerate(("left", "right")):  # Elbows bent: the load is held close.
    style[_J[f"{side}_elbow"]] = rng.uniform(0.4, 1.3) * sb.elbow_axes[k]
  prob = _problem(rng, sb, betas, style, stand_y, obj, rot, trans, hand_target=np.stack(targets),
                  hand_w=np.ones(2), palm_dir=np.stack(dirs), palm_w=np.full(2, 2.0),
                  hand_rot=poses.finger_rotations(rng.uniform(0.1, 0.35), 0.4))
  return Scene("carry", obj, rot, trans, prob, held=True, hands_used=(0, 1), pose_class="carry_front")


def _lift(rng, obj, sb, betas, stand_y, shoulder_y, pelvis_y):
  rot = yaw_matrix(rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.08))
  lo, hi = _bbox(obj, rot)
  if hi[0] - lo[0] > 0.75:
    rot = yaw_matrix(np.pi / 2) @ rot
    lo, hi = _bbox(obj, rot)
  # Far enough in front that bent knees fit before the object.
  trans = np.array([0.0, _floor_offset(obj), 0.4 - lo[2] + rng.uniform(0.0, 0.1)], np.float32)
  pts, nrm = _world_surface(obj, rot, trans)
  mid = 0.5 * (lo + hi) + trans
  grab_y = trans[1] + lo[1] + rng.uniform(0.5, 0.8) * (hi[1] - lo[1])
  targets, dirs = [], []
  for sx in (1.0, -1.0):
    p, n = _surface_point(pts, nrm, np.array([sx, 0.0, 0.0]), np.array([mid[0] + sx, grab_y, mid[2]]))
    targets.append(p + _SKIN * n)
    dirs.append(-n)
  prob = _problem(rng, sb, betas, _style(rng, "lift"), stand_y, obj, rot, trans, hand_target=np.stack(targets),
                  hand_w=np.ones(2), palm_dir=np.stack(dirs), palm_w=np.full(2, 2.0),
                  hand_rot=poses.finger_rotations(rng.uniform(0.1, 0.35), 0.4), balance_w=np.float32(5.0),
                  pelvis_w=_ANCHOR)
  return Scene("lift", obj, rot, trans, prob, held=False, hands_used=(0, 1), pose_class="lift")


def _hold_one_hand(rng, obj, sb, betas, stand_y, shoulder_y, pelvis_y):
  hand = int(rng.integers(2))
  sx = 1.0 if hand == 0 else -1.0
  hand_w, palm_w = np.zeros(2), np.zeros(2)
  hand_w[hand] = 1.0
  targets = np.zeros((2, 3), np.float32)
  dirs = np.tile(np.array([0, 1, 0], np.float32), (2, 1))
  name = obj.category
  if name in ("toolbox", "backpack"):  # Hanging from a gripped handle at the side.
    rot = yaw_matrix(np.pi / 2 + rng.normal(0, 0.1))
    lo, hi = _bbox(obj, rot)
    grip = np.array([sx * rng.uniform(0.25, 0.32), pelvis_y - rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.1)])
    top = obj.vertices[np.argmax(obj.vertices[:, 1])] @ rot.T  # Top of the handle.
    trans = (grip - np.array([0, 0.03, 0]) - top).astype(np.float32)
    trans[0] += sx * 0.02  # Keep the box's side off the thigh.
    if trans[1] + lo[1] < 0.05:
      trans[1] = 0.05 - lo[1]
      grip = top + trans + np.array([0, 0.03, 0])
    targets[hand] = grip
    fingers = poses.finger_rotations(1.0, 0.8)
    held = True
    pose_class = "carry_side"
  elif name == "suitcase":  # Standing on its wheels, hand on the pull handle.
    rot = yaw_matrix(rng.normal(0, 0.3))
    trans = np.array([sx * rng.uniform(0.3, 0.45), _floor_offset(obj), rng.uniform(0.15, 0.35)], np.float32)
    top = obj.vertices[np.argmax(obj.vertices[:, 1])] @ rot.T + trans
    targets[hand] = top + np.array([0, 0.025, 0])
    fingers = poses.finger_rotations(0.9, 0.7)
    held = False
    pose_class = "hold"
  else:  # Resting on an upturned palm in front of the body.
    rot = yaw_matrix(rng.uniform(-0.5, 0.5))
    lo, hi = _bbox(obj, rot)
    palm = np.array([sx * rng.uniform(0.1, 0.3), rng.uniform(pelvis_y + 0.05, shoulder_y - 0.2),
                     rng.uniform(0.3, 0.45)])
    bottom_centre = np.array([0.5 * (lo[0] + hi[0]), lo[1], 0.5 * (lo[2] + hi[2])])
    trans = (palm + np.array([0, _SKIN, 0]) - bottom_centre).astype(np.float32)
    targets[hand] = palm
    palm_w[hand] = 3.0
    fingers = poses.finger_rotations(rng.uniform(0.05, 0.3), 0.2)
    held = True
    pose_class = "hold"
  prob = _problem(rng, sb, betas, _style(rng, "hold"), stand_y, obj, rot, trans, hand_target=targets,
                  hand_w=hand_w, palm_dir=dirs, palm_w=palm_w, hand_rot=fingers)
  return Scene("hold_one_hand", obj, rot, trans, prob, held=held, hands_used=(hand,), pose_class=pose_class)


def _seat_top(obj: ObjectTemplate) -> np.ndarray:
  """Highest upward-facing surface point near the seat centre (canonical frame)."""
  p, n = obj.surface_points, obj.surface_normals
  near = (np.abs(p[:, 0]) < 0.1) & (np.abs(p[:, 2] - 0.02) < 0.1) & (n[:, 1] > 0.7)
  if not near.any():
    near = n[:, 1] > 0.7
  return p[near][np.argmax(p[near, 1])]


def _sit(rng, obj, sb, betas, stand_y, shoulder_y, pelvis_y):
  rot = yaw_matrix(0.0)
  trans = np.array([0.0, _floor_offset(obj), 0.0], np.float32)
  seat = _seat_top(obj) + trans
  depth = obj.vertices[:, 2].max() - obj.vertices[:, 2].min()
  back = 0.25 * depth if obj.category.startswith("chair") else 0.05
  target = seat + np.array([rng.normal(0, 0.02), 0.11, -min(0.2, back) + rng.uniform(-0.03, 0.03)])
  prob = _problem(rng, sb, betas, _style(rng, "sit", float(seat[1])), target[1], obj, rot, trans,
                  pelvis_target=target, pelvis_w=np.array([0.3, 1.0, 0.3]), balance_w=np.float32(0.0),
                  sole_w=np.full(2, 0.5))
  rest_pelvis_y = pelvis_y - stand_y
  prob = prob._replace(init_trans=np.array([target[0], target[1] - rest_pelvis_y, target[2]], np.float32))
  return Scene("sit", obj, rot, trans, prob, held=False, hands_used=(), pose_class="sit")


def _push_or_lean(kind):
  def build(rng, obj, sb, betas, stand_y, shoulder_y, pelvis_y):
    chair = obj.category.startswith("chair")  # Chairs are pushed/leant on by their backs.
    rot = yaw_matrix((np.pi if chair else rng.choice([0.0, np.pi / 2, np.pi, 1.5 * np.pi])) + rng.normal(0, 0.05))
    lo, hi = _bbox(obj, rot)
    trans = np.array([rng.normal(0, 0.03), _floor_offset(obj), 0.32 - lo[2] + rng.uniform(0.0, 0.15)], np.float32)
    pts, nrm = _world_surface(obj, rot, trans)
    near_z = trans[2] + lo[2]
    width = hi[0] - lo[0]
    targets, dirs = [], []
    for sx in (1.0, -1.0):
      x = sx * min(0.4 * width, rng.uniform(0.12, 0.25)) + trans[0]
      if kind == "lean":
        near = np.array([x, trans[1] + hi[1], near_z + rng.uniform(0.03, 0.12)])
        p, n = _surface_point(pts, nrm, np.array([0.0, 1.0, 0.0]), near, 0.8)
      else:
        if obj.category.startswith("table"):  # Push on the edge of the table top.
          y = trans[1] + hi[1] - 0.015
        else:
          y = min(1.3, trans[1] + lo[1] + rng.uniform(0.5, 0.85) * (hi[1] - lo[1]))
        p, n = _surface_point(pts, nrm, np.array([0.0, 0.0, -1.0]), np.array([x, y, near_z]), 0.8)
      targets.append(p + _SKIN * n)
      dirs.append(-n)
    style = _style(rng, "bend" if hi[1] < 0.6 else "push")
    prob = _problem(rng, sb, betas, style, stand_y, obj, rot, trans, hand_target=np.stack(targets),
                    hand_w=np.ones(2), palm_dir=np.stack(dirs), palm_w=np.full(2, 2.0),
                    hand_rot=poses.finger_rotations(rng.uniform(0.0, 0.15), 0.3), balance_w=np.float32(2.0),
                    pelvis_w=_ANCHOR)
    return Scene(kind, obj, rot, trans, prob, held=False, hands_used=(0, 1), pose_class=kind)
  return build


def _stand_beside(rng, obj, sb, betas, stand_y, shoulder_y, pelvis_y):
  rot = yaw_matrix(rng.uniform(0, 2 * np.pi))
  lo, hi = _bbox(obj, rot)
  radius = 0.5 * np.linalg.norm((hi - lo)[[0, 2]])
  angle = rng.uniform(-0.6 * np.pi, 0.6 * np.pi)  # Mostly in front or to the side.
  dist = 0.3 + radius + rng.uniform(0.0, 0.35)
  trans = np.array([dist * np.sin(angle), _floor_offset(obj), dist * np.cos(angle)], np.float32)
  trans[[0, 2]] -= 0.5 * (lo + hi)[[0, 2]]
  prob = _problem(rng, sb, betas, _style(rng, "stand"), stand_y, obj, rot, trans)
  return Scene("stand_beside", obj, rot, trans, prob, held=False, hands_used=(), pose_class="stand")


def _kick(rng, obj, sb, betas, stand_y, shoulder_y, pelvis_y):
  rot = yaw_matrix(rng.uniform(0, 2 * np.pi))
  lo, hi = _bbox(obj, rot)
  r = 0.5 * (hi[1] - lo[1])
  trans = np.array([-0.1 + rng.normal(0, 0.03), _floor_offset(obj), 0.35 + r + rng.uniform(0.0, 0.1)], np.float32)
  centre = trans + 0.5 * (lo + hi)
  toe = centre + np.array([0.0, -0.2 * r, -r - 0.01]) * np.array([1, 1, 1])
  toe_t, toe_w, sole_w = np.zeros((2, 3), np.float32), np.zeros(2), np.array([1.0, 0.0])
  toe_t[1], toe_w[1] = toe, 1.0  # Right foot kicks, left foot stands.
  prob = _problem(rng, sb, betas, _style(rng, "kick"), stand_y, obj, rot, trans, toe_target=toe_t,
                  toe_w=toe_w, sole_w=sole_w, balance_w=np.float32(0.0))
  return Scene("kick", obj, rot, trans, prob, held=False, hands_used=(), pose_class="kick")


def _bend(rng, obj, sb, betas, stand_y, shoulder_y, pelvis_y):
  """Bending at the hips, legs nearly straight, both palms on top of a low object on the floor."""
  rot = yaw_matrix(rng.uniform(0, 2 * np.pi))
  lo, hi = _bbox(obj, rot)
  trans = np.array([rng.normal(0, 0.03), _floor_offset(obj), 0.3 - lo[2] + rng.uniform(0.0, 0.1)], np.float32)
  pts, nrm = _world_surface(obj, rot, trans)
  mid = 0.5 * (lo + hi) + trans
  half = 0.5 * (hi[0] - lo[0])
  targets, dirs = [], []
  for sx in (1.0, -1.0):
    near = np.array([mid[0] + sx * min(0.7 * half, rng.uniform(0.08, 0.18)), trans[1] + hi[1], mid[2]])
    p, n = _surface_point(pts, nrm, np.array([0.0, 1.0, 0.0]), near, 0.8)
    targets.append(p + _SKIN * n)
    dirs.append(-n)
  prob = _problem(rng, sb, betas, _style(rng, "bend"), stand_y, obj, rot, trans, hand_target=np.stack(targets),
                  hand_w=np.ones(2), palm_dir=np.stack(dirs), palm_w=np.full(2, 2.0),
                  hand_rot=poses.finger_rotations(rng.uniform(0.0, 0.2), 0.3), balance_w=np.float32(3.0),
                  pelvis_w=_ANCHOR)
  return Scene("bend", obj, rot, trans, prob, held=False, hands_used=(0, 1), pose_class="bend")


def _squat(rng, obj, sb, betas, stand_y, shoulder_y, pelvis_y):
  """Squatting low in front of an object on the floor, hands on its sides."""
  rot = yaw_matrix(rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.1))
  lo, hi = _bbox(obj, rot)
  if hi[0] - lo[0] > 0.7:
    rot = yaw_matrix(np.pi / 2) @ rot
    lo, hi = _bbox(obj, rot)
  trans = np.array([0.0, _floor_offset(obj), 0.5 - lo[2] + rng.uniform(0.0, 0.1)], np.float32)
  pts, nrm = _world_surface(obj, rot, trans)
  mid = 0.5 * (lo + hi) + trans
  grab_y = trans[1] + lo[1] + rng.uniform(0.4, 0.75) * (hi[1] - lo[1])
  targets, dirs = [], []
  for sx in (1.0, -1.0):
    p, n = _surface_point(pts, nrm, np.array([sx, 0.0, 0.0]), np.array([mid[0] + sx, grab_y, mid[2] - 0.05]))
    targets.append(p + _SKIN * n)
    dirs.append(-n)
  pelvis = np.array([0.0, rng.uniform(0.35, 0.5), rng.uniform(-0.05, 0.05)], np.float32)
  prob = _problem(rng, sb, betas, _style(rng, "squat"), stand_y, obj, rot, trans, hand_target=np.stack(targets),
                  hand_w=np.ones(2), palm_dir=np.stack(dirs), palm_w=np.full(2, 2.0),
                  hand_rot=poses.finger_rotations(rng.uniform(0.1, 0.35), 0.4), balance_w=np.float32(0.0),
                  pelvis_target=pelvis, pelvis_w=np.array([0.05, 1.0, 0.05], np.float32))
  rest_pelvis_y = pelvis_y - stand_y
  prob = prob._replace(init_trans=np.array([0.0, pelvis[1] - rest_pelvis_y, 0.0], np.float32))
  return Scene("squat", obj, rot, trans, prob, held=False, hands_used=(0, 1), pose_class="squat")


def _overhead(rng, obj, sb, betas, stand_y, shoulder_y, pelvis_y):
  """Holding an object above the head with both hands on its sides."""
  rot = yaw_matrix(rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.1))
  lo, hi = _bbox(obj, rot)
  if hi[0] - lo[0] > 0.55:
    rot = yaw_matrix(np.pi / 2) @ rot
    lo, hi = _bbox(obj, rot)
  bottom = shoulder_y + rng.uniform(0.35, 0.5)  # Above the head (shoulders are ~0.25 m below its top).
  trans = np.array([rng.normal(0, 0.02), bottom - lo[1], rng.uniform(0.0, 0.12) - 0.5 * (lo[2] + hi[2])],
                   np.float32)
  pts, nrm = _world_surface(obj, rot, trans)
  mid = 0.5 * (lo + hi) + trans
  targets, dirs = [], []
  for sx in (1.0, -1.0):
    near = np.array([mid[0] + sx, mid[1] + rng.uniform(-0.2, 0.1) * (hi[1] - lo[1]), mid[2]])
    p, n = _surface_point(pts, nrm, np.array([sx, 0.0, 0.0]), near)
    targets.append(p + _SKIN * n)
    dirs.append(-n)
  prob = _problem(rng, sb, betas, _style(rng, "overhead"), stand_y, obj, rot, trans, hand_target=np.stack(targets),
                  hand_w=np.ones(2), palm_dir=np.stack(dirs), palm_w=np.full(2, 2.0),
                  hand_rot=poses.finger_rotations(rng.uniform(0.1, 0.3), 0.4), pelvis_w=_ANCHOR)
  return Scene("overhead", obj, rot, trans, prob, held=True, hands_used=(0, 1), pose_class="arms_overhead")


BUILDERS = {"carry": _carry, "lift": _lift, "hold_one_hand": _hold_one_hand, "sit": _sit,
            "push": _push_or_lean("push"), "lean": _push_or_lean("lean"), "stand_beside": _stand_beside,
            "kick": _kick, "bend": _bend, "squat": _squat, "overhead": _overhead}


def sample_interaction(rng: np.random.Generator, allowed=None, objects=None) -> tuple[str, str]:
  """(interaction, object category) drawn by INTERACTION_WEIGHTS, uniform over suitable objects.

  ``allowed`` / ``objects`` optionally restrict the interaction types and
  object categories.
  """
  suits = {k: [o for o in v if objects is None or o in objects] for k, v in INTERACTIONS.items()
           if allowed is None or k in allowed}
  names = [k for k, v in suits.items() if v]
  if not names:
    raise ValueError(f"no interaction fits interactions={allowed!r} and objects={objects!r}; "
                     f"known: {INTERACTIONS}")
  w = np.array([INTERACTION_WEIGHTS[k] for k in names])
  kind = names[rng.choice(len(names), p=w / w.sum())]
  return kind, str(rng.choice(suits[kind]))


def build_scene(rng, kind: str, obj: ObjectTemplate, sb: poses.SolverBody, betas: np.ndarray,
                rest_joints: np.ndarray, rest_sole_y: float) -> Scene:
  """The scene of interaction ``kind`` with ``obj`` for a body of shape ``betas``.

  rest_joints [52, 3] and rest_sole_y are the shaped rest pose's joints and
  lowest sole height (before any translation), which size the placement.
  """
  stand_y = -rest_sole_y
  shoulder_y = rest_joints[_J["left_shoulder"], 1] + stand_y
  pelvis_y = rest_joints[0, 1] + stand_y
  return BUILDERS[kind](rng, obj, sb, np.asarray(betas, np.float32), np.float32(stand_y), shoulder_y, pelvis_y)
