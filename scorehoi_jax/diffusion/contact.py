"""The contact-predictor interface of the refinement, and a geometric stand-in.

``refine`` calls, once per round (paper Algorithm 1 lines 4–5),

  contact_fn(human_points [B, Nh, 3], object_points [B, K, 3], aux)
      -> (p_h [B, Nh], p_o [B, K], p_of [B, K])   probabilities in [0, 1]

with the current pelvis-centred guidance vertices and posed template points;
``aux`` is whatever pytree the predictor needs (image feature map, camera
translation, ...), passed through ``RefineInputs.aux`` untouched. The learned
ContactFormer is wrapped into this signature by
``scorehoi_jax.models.contact_former.make_contact_fn`` (it projects the points
with the camera, samples the feature map and runs the transformer).

``make_proximity_contact_fn`` is a learning-free stand-in with the same
interface: contact where the current geometry is already close, floor contact
for object points near the floor. It makes ``refine`` runnable end to end
before a trained predictor exists, and gives the tests a predictor whose
output is known.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from scorehoi_jax.diffusion.losses import CAMERA_UP, floor_heights
from scorehoi_jax.geometry.distances import pairwise_sq_distances

ContactFn = Callable[[jnp.ndarray, jnp.ndarray, object], tuple]


def make_proximity_contact_fn(margin: float = 0.05, scale: float = 0.01, floor_margin: float = 0.05,
                              up=CAMERA_UP, use_plane: bool = False) -> ContactFn:
  """Geometric stand-in: p = sigmoid((margin − distance) / scale).

  Args:
    margin: human/object points nearer than this (m) to the other set get p > 0.5.
    scale: softness of the sigmoid (m).
    floor_margin: object points lower than this above the floor get p_of > 0.5.
    up: up direction for the implicit floor (camera axes: −y).
    use_plane: read a ground plane [B, 4] from ``aux['ground_plane']`` instead.
  """

  def contact_fn(human, obj, aux):
    sq = pairwise_sq_distances(human, obj)
    d_h = jnp.sqrt(jnp.min(sq, axis=-1) + 1e-12)
    d_o = jnp.sqrt(jnp.min(sq, axis=-2) + 1e-12)
    if use_plane:
      heights = jax.vmap(lambda h, o, pl: floor_heights(h, o, up, pl))(human, obj, aux["ground_plane"])
    else:
      heights = jax.vmap(lambda h, o: floor_heights(h, o, up))(human, obj)
    p_h = jax.nn.sigmoid((margin - d_h) / scale)
    p_o = jax.nn.sigmoid((margin - d_o) / scale)
    p_of = jax.nn.sigmoid((floor_margin - jnp.abs(heights)) / scale)
    return p_h, p_o, p_of

  return contact_fn
