"""Pose solving for synthetic interactions: inverse kinematics on the body model.

A scene (scenes.py) says where the hands, feet and pelvis should be, which
way the palms should face, and where the object is; ``solve_pose`` finds body
joint rotations and a translation that satisfy this with the differentiable
body model, by Adam on the sum of

- reach terms: palm / toe points and the pelvis joint to their targets;
- palm orientation: the palm normal towards the object (flat hands on boxes);
- floor terms: soles on y = 0 for standing feet, no vertex below the floor;
- penetration: relu(margin - Φ(v))² over body vertices in the object frame,
  Φ being the object's SDF grid (the same penetration depth the guidance uses);
- plausibility: a quadratic pull towards a randomised "style" pose, hinge
  joint limits (knees and elbows bend one way, hips and spine within ranges),
  and a weak balance term (pelvis over the feet when standing).

The optimisation runs on a small BodyModel: the 431 guidance vertices plus a
few named ones (palm centres, soles, toes), which is exact for those vertices
(LBS is row-wise) and ~30x cheaper than the full mesh. The whole loop is one
jitted ``lax.scan``; every weight is an array input, so all interaction types
share one compilation. Fingers are not optimised: a scene picks a fixed grasp
(flat hand, curl) and the solver keeps it.

World frame: metres, +Y up, floor at y = 0; the person starts facing +Z.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from scorehoi_jax import body as body_lib
from scorehoi_jax.geometry import axis_angle_to_matrix
from scorehoi_jax.geometry.sdf import SDFGrid, sdf_lookup

NUM_BODY_JOINTS = 22  # Pelvis (global orientation) + 21 body joints; fingers are fixed.
_J = {n: i for i, n in enumerate(body_lib.SMPLH_JOINT_NAMES)}

# Rest-pose joint axes: knee flexion is +x, hip flexion -x (the thigh swings forward),
# spine/neck flexion +x; elbow flexion axes are computed from the arm (_elbow_axes).
_PALM_OFFSET = 0.015  # Palm centre sits this far in front of the metacarpal joints.


@dataclasses.dataclass(frozen=True, eq=False)
class SolverBody:
  """The small model the solver skins, and named points on it.

  ``model`` is the full model's vertex subset ``indices`` (guidance vertices
  first, then palms, soles and toes); the ``*_rows`` fields index into it.
  It is a static argument of the jitted solver, hashed by identity
  (``eq=False``), and memoised per body model by ``solver_body``.
  """
  model: body_lib.BodyModel
  indices: np.ndarray
  num_guidance: int
  palm_rows: np.ndarray  # [2] left, right.
  sole_rows: np.ndarray  # [2, 4] per foot: heel, ball, two sides.
  toe_rows: np.ndarray  # [2] front of each foot (kicking point).
  elbow_axes: np.ndarray  # [2, 3] unit flexion axes (left, right) in the rest pose.


def _farthest(points: np.ndarray, k: int) -> np.ndarray:
  chosen = [int(np.argmin(points[:, 2]))]
  d = np.linalg.norm(points - points[chosen[0]], axis=1)
  for _ in range(k - 1):
    chosen.append(int(np.argmax(d)))
    d = np.minimum(d, np.linalg.norm(points - points[chosen[-1]], axis=1))
  return np.asarray(chosen)


def _elbow_axes(joints: np.ndarray) -> np.ndarray:
  axes = []
  for side in ("left", "right"):
    s, e, w = (joints[_J[f"{side}_{n}"]] for n in ("shoulder", "elbow", "wrist"))
    a = np.cross(e - s, w - e)  # Rotating the forearm about this by +θ folds it up.
    axes.append(a / np.linalg.norm(a))
  return np.stack(axes)


def _palm_frame(joints):
  """Palm centres [..., 2, 3] and unit palm normals [..., 2, 3] (left, right).

  The normal is the cross product of the finger direction and the
  pinky-to-index direction, sign-flipped for the right hand (a mirror image),
  so for both hands it points out of the palm.
  """
  centres, normals = [], []
  for side, sign in (("left", 1.0), ("right", -1.0)):
    wrist = joints[..., _J[f"{side}_wrist"], :]
    middle = joints[..., _J[f"{side}_middle1"], :]
    index = joints[..., _J[f"{side}_index1"], :]
    pinky = joints[..., _J[f"{side}_pinky1"], :]
    n = sign * jnp.cross(middle - wrist, index - pinky)
    n = n / jnp.sqrt(jnp.sum(n * n, -1, keepdims=True) + 1e-12)
    centres.append(0.5 * (wrist + middle) + _PALM_OFFSET * n)
    normals.append(n)
  return jnp.stack(centres, -2), jnp.stack(normals, -2)


def _build_solver_body(model: body_lib.BodyModel) -> SolverBody:
  full_v = np.asarray(model.v_template, np.float64)
  joints = np.asarray(body_lib.shaped_rest(model, jnp.zeros((model.num_betas,)))[1])
  guidance = body_lib.guidance_vertex_indices(model)
  weights = np.asarray(model.weights)
  extra = []
  # Palm surface vertex: the vertex nearest the palm centre of the rest pose.
  centres, normals = (np.asarray(x) for x in _palm_frame(jnp.asarray(joints)))
  for k, side in enumerate(("left", "right")):
    hand = weights[:, _J[f"{side}_wrist"]:_J[f"{side}_wrist"] + 1].sum(1) > 0.3
    cand = np.nonzero(hand)[0] if hand.any() else np.arange(len(full_v))
    target = centres[k] + 0.01 * normals[k]
    extra.append(int(cand[np.argmin(np.linalg.norm(full_v[cand] - target, axis=1))]))
  soles, toes = [], []
  for side in ("left", "right"):
    foot = (weights[:, _J[f"{side}_ankle"]] + weights[:, _J[f"{side}_foot"]]) > 0.5
    idx = np.nonzero(foot)[0]
    low = idx[full_v[idx, 1] < full_v[idx, 1].min() + 0.015]
    soles.append(low[_farthest(full_v[low], 4)])
    toes.append(int(idx[np.argmax(full_v[idx, 2])]))
  indices = np.concatenate([guidance, np.asarray(extra), np.concatenate(soles), np.asarray(toes)])
  n = len(guidance)
  return SolverBody(
      model=body_lib.subset_body_model(model, indices), indices=indices, num_guidance=n,
      palm_rows=np.arange(n, n + 2), sole_rows=np.arange(n + 2, n + 10).reshape(2, 4),
      toe_rows=np.arange(n + 10, n + 12), elbow_axes=_elbow_axes(joints).astype(np.float32))


_SOLVER_BODIES: dict[int, tuple] = {}


def solver_body(model: body_lib.BodyModel) -> SolverBody:
  """The solver's vertex subset of ``model`` (memoised per model object)."""
  hit = _SOLVER_BODIES.get(id(model))
  if hit is None or hit[0] is not model:
    hit = (model, _build_solver_body(model))  # Keeps the model alive so its id stays unique.
    _SOLVER_BODIES[id(model)] = hit
  return hit[1]


class PoseProblem(NamedTuple):
  """One inverse-kinematics problem; every field is an array (a pytree leaf).

  Weights of 0 switch a term off, so every interaction type uses the same
  compiled solver. Points are world coordinates (metres, +Y up).
  """
  betas: jnp.ndarray  # [B]
  init_aa: jnp.ndarray  # [22, 3] initial axis-angle of pelvis + body joints.
  init_trans: jnp.ndarray  # [3]
  prior_aa: jnp.ndarray  # [22, 3] the style pose the prior pulls towards.
  prior_w: jnp.ndarray  # [22] per-joint prior stiffness.
  hand_rot: jnp.ndarray  # [30, 3, 3] fixed finger rotations.
  hand_target: jnp.ndarray  # [2, 3] palm-centre targets (left, right).
  hand_w: jnp.ndarray  # [2]
  palm_dir: jnp.ndarray  # [2, 3] desired unit palm normals.
  palm_w: jnp.ndarray  # [2]
  pelvis_target: jnp.ndarray  # [3]
  pelvis_w: jnp.ndarray  # [3] per axis (e.g. only height).
  toe_target: jnp.ndarray  # [2, 3] toe targets (kicking).
  toe_w: jnp.ndarray  # [2]
  sole_w: jnp.ndarray  # [2] soles flat on the floor, per foot.
  balance_w: jnp.ndarray  # [] pelvis over the midpoint of the feet.
  obj_rot: jnp.ndarray  # [3, 3] canonical -> world.
  obj_trans: jnp.ndarray  # [3]
  sdf: SDFGrid
  pen_w: jnp.ndarray  # []


class PoseSolution(NamedTuple):
  rotmats: jnp.ndarray  # [52, 3, 3]
  trans: jnp.ndarray  # [3] world translation added to body_forward's vertices.
  loss: jnp.ndarray  # [] final total loss.
  terms: dict  # final value of each loss term.


def full_rotmats(aa: jnp.ndarray, hand_rot: jnp.ndarray) -> jnp.ndarray:
  return jnp.concatenate([axis_angle_to_matrix(aa), hand_rot], axis=-3)


def _limit_loss(aa: jnp.ndarray, elbow_axes: jnp.ndarray) -> jnp.ndarray:
  """Hinge penalties keeping joints in a human range (radians, rest = 0)."""
  relu2 = lambda x: jnp.square(jax.nn.relu(x))
  loss = 0.0
  for side, elbow_axis in (("left", elbow_axes[0]), ("right", elbow_axes[1])):
    knee = aa[_J[f"{side}_knee"]]
    loss += relu2(-knee[0]) + relu2(knee[0] - 2.5) + 4.0 * jnp.sum(jnp.square(knee[1:]))
    elbow = aa[_J[f"{side}_elbow"]]
    flex = jnp.dot(elbow, elbow_axis)
    # Forearm twist lives in the wrist here, so the elbow is a pure hinge.
    loss += relu2(-flex) + relu2(flex - 2.4) + 4.0 * jnp.sum(jnp.square(elbow - flex * elbow_axis))
    hip = aa[_J[f"{side}_hip"]]
    loss += relu2(hip[0] - 0.5) + relu2(-hip[0] - 2.3) + relu2(jnp.abs(hip[1]) - 0.6) + relu2(jnp.abs(hip[2]) - 0.6)
    ankle = aa[_J[f"{side}_ankle"]]
    loss += relu2(jnp.abs(ankle) - jnp.array([0.7, 0.3, 0.3])).sum()
    wrist = aa[_J[f"{side}_wrist"]]
    loss += relu2(jnp.abs(wrist) - 1.2).sum()
    loss += relu2(jnp.abs(aa[_J[f"{side}_foot"]]) - 0.3).sum()
  for name, lim in (("spine1", (0.55, 0.3, 0.3)), ("spine2", (0.35, 0.25, 0.25)), ("spine3", (0.3, 0.25, 0.25)),
                    ("neck", (0.35, 0.45, 0.25)), ("head", (0.35, 0.45, 0.25))):
    loss += relu2(jnp.abs(aa[_J[name]]) - jnp.asarray(lim)).sum()
  return 10.0 * loss


def _loss(params, problem: PoseProblem, sb: SolverBody):
  aa, trans = params["aa"], params["trans"]
  out = body_lib.body_forward(sb.model, full_rotmats(aa, problem.hand_rot), problem.betas)
  verts = out.vertices + trans
  joints = out.joints + trans
  palm_c, palm_n = _palm_frame(joints)
  palm_v = verts[sb.palm_rows]
  # The palm point: the surface vertex, pulled with the joint-based centre for stability.
  palm = 0.5 * (palm_v + palm_c)
  terms = {}
  terms["hand"] = 100.0 * jnp.sum(problem.hand_w * jnp.sum(jnp.square(palm - problem.hand_target), -1))
  terms["palm"] = jnp.sum(problem.palm_w * (1.0 - jnp.sum(palm_n * problem.palm_dir, -1)))
  terms["pelvis"] = 100.0 * jnp.sum(problem.pelvis_w * jnp.square(joints[0] - problem.pelvis_target))
  toes = verts[sb.toe_rows]
  terms["toe"] = 100.0 * jnp.sum(problem.toe_w * jnp.sum(jnp.square(toes - problem.toe_target), -1))
  soles_y = verts[sb.sole_rows][..., 1]  # [2, 4]
  terms["sole"] = 300.0 * jnp.sum(problem.sole_w * jnp.mean(jnp.square(soles_y), -1))
  terms["floor"] = 1000.0 * jnp.sum(jnp.square(jax.nn.relu(-verts[:, 1])))
  feet_mid = 0.5 * (joints[_J["left_ankle"]] + joints[_J["right_ankle"]])
  terms["balance"] = problem.balance_w * jnp.sum(jnp.square((joints[0] - feet_mid)[jnp.array([0, 2])]))
  local = (verts - problem.obj_trans) @ problem.obj_rot  # World -> canonical object frame.
  phi = sdf_lookup(problem.sdf, local)
  terms["pen"] = problem.pen_w * 1000.0 * jnp.sum(jnp.square(jax.nn.relu(0.008 - phi)))
  terms["prior"] = jnp.sum(problem.prior_w * jnp.sum(jnp.square(aa - problem.prior_aa), -1))
  terms["limits"] = _limit_loss(aa, jnp.asarray(sb.elbow_axes))
  return sum(terms.values()), terms


@functools.partial(jax.jit, static_argnames=("sb", "steps", "lr"))
def _solve(problem: PoseProblem, sb: SolverBody, steps: int, lr: float):
  params = {"aa": problem.init_aa, "trans": problem.init_trans}
  # Cosine decay: large early steps move the whole body, small late ones settle contacts.
  opt = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.05))
  grad_fn = jax.value_and_grad(_loss, has_aux=True)

  def step(carry, _):
    params, opt_state = carry
    (_, _), grads = grad_fn(params, problem, sb)
    updates, opt_state = opt.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
  loss, terms = _loss(params, problem, sb)
  return full_rotmats(params["aa"], problem.hand_rot), params["trans"], loss, terms


def solve_pose(problem: PoseProblem, sb: SolverBody, steps: int = 200, lr: float = 0.03) -> PoseSolution:
  """Run the jitted IK for one problem. Returns rotations [52,3,3] and translation."""
  problem = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), problem)
  rotmats, trans, loss, terms = _solve(problem, sb, int(steps), float(lr))
  return PoseSolution(rotmats=rotmats, trans=trans, loss=loss, terms=terms)


def finger_rotations(curl: float, thumb: float = 0.0, spread: float = 0.0) -> np.ndarray:
  """Fixed finger rotations [30, 3, 3]: curl (rad per joint) about each finger's bending axis.

  The bending axis of the embedded model's fingers in the rest pose is z
  (+ for the left hand, - for the right, as in scorehoi_jax.demo).
  """
  aa = np.zeros((30, 3), np.float32)
  for k in range(30):
    name = body_lib.SMPLH_JOINT_NAMES[22 + k]
    sign = 1.0 if name.startswith("left") else -1.0
    if "thumb" in name:
      aa[k] = (0.0, sign * 0.3 * thumb, sign * 0.5 * thumb)
    else:
      base = name.endswith("1")
      aa[k] = (0.0, sign * spread * base * (0.5 if "index" in name else -0.3), sign * curl)
  return np.asarray(axis_angle_to_matrix(jnp.asarray(aa)))
