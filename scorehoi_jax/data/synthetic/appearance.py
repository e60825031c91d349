"""Random appearance: backgrounds, floors, lighting, clothing and object colours.

Everything is procedural and drawn from the frame's generator, so a frame is
reproducible from its seed. The aim is variety (so that a network cannot key
on the background or a colour), not photo-realism:
- backdrop: solid colour, gradient, stripes/checker, multi-octave value noise,
  or a mix, with random hue; a floor plane (textured by its world x/z, so
  it has correct perspective) below the horizon, with a soft contact shadow;
- body: skin tone plus top / trousers / shoes colours assigned by each
  vertex's dominant joint, with a little per-vertex noise;
- object: one colour per part (or per object), lightly varied;
- light: a random direction (always from the camera's side of the scene),
  ambient and diffuse strength; finally sensor noise and gamma.
The capture layout replaces the backdrop and floor by a room (room.py) and
``finish`` by ``finish_capture`` (stronger blur, motion blur, vignetting,
white balance, shot noise, JPEG artefacts).
"""

from __future__ import annotations

import colorsys

import numpy as np

from scorehoi_jax import body as body_lib
from scorehoi_jax.render import Light

_SKIN = np.array([[0.96, 0.80, 0.69], [0.90, 0.72, 0.58], [0.80, 0.60, 0.45], [0.63, 0.45, 0.33],
                  [0.45, 0.31, 0.22], [0.33, 0.22, 0.16]])
_LEG_JOINTS = {"left_hip", "right_hip", "left_knee", "right_knee"}
_FOOT_JOINTS = {"left_ankle", "right_ankle", "left_foot", "right_foot"}
_SKIN_JOINTS = {"neck", "head"} | {n for n in body_lib.SMPLH_JOINT_NAMES[20:]}  # Head, wrists, hands.
_ARM_JOINTS = {"left_elbow", "right_elbow"}


def random_color(rng, sat=(0.2, 0.9), val=(0.2, 0.95)) -> np.ndarray:
  return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*sat), rng.uniform(*val)), np.float32)


def body_colors(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
  """Per-vertex colours [V, 3] for a body with skinning weights [V, J]."""
  main = np.argmax(weights, axis=1)
  names = np.asarray(body_lib.SMPLH_JOINT_NAMES)[main]
  skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.92, 1.05)
  top, trousers, shoes = random_color(rng), random_color(rng, val=(0.1, 0.8)), random_color(rng, val=(0.05, 0.6))
  short_sleeves = rng.uniform() < 0.4
  shorts = rng.uniform() < 0.25
  col = np.tile(top, (len(main), 1))
  col[np.isin(names, list(_LEG_JOINTS))] = trousers
  col[np.isin(names, ["pelvis"])] = trousers
  col[np.isin(names, list(_FOOT_JOINTS))] = shoes
  col[np.isin(names, list(_SKIN_JOINTS))] = skin
  if short_sleeves:
    col[np.isin(names, list(_ARM_JOINTS))] = skin
  if shorts:
    col[np.isin(names, ["left_knee", "right_knee"])] = skin
  col = col * rng.uniform(0.93, 1.07, (len(col), 1))
  return np.clip(col, 0, 1).astype(np.float32)


def object_colors(rng: np.random.Generator, num_vertices: int, part_sizes=()) -> np.ndarray:
  """Per-vertex colours [V, 3]: one colour per part (parts share one half the time)."""
  sizes = list(part_sizes) or [num_vertices]
  shared = rng.uniform() < 0.5
  base = random_color(rng)
  cols = [np.tile(base if shared else random_color(rng), (n, 1)) for n in sizes]
  col = np.concatenate(cols)[:num_vertices]
  if len(col) < num_vertices:
    col = np.concatenate([col, np.tile(base, (num_vertices - len(col), 1))])
  return np.clip(col * rng.uniform(0.95, 1.05, (num_vertices, 1)), 0, 1).astype(np.float32)


def _value_noise(rng, h, w, octaves=4) -> np.ndarray:
  """Smooth noise in [0, 1]: bilinearly upsampled random grids, summed over octaves."""
  out = np.zeros((h, w), np.float32)
  amp, total = 1.0, 0.0
  for o in range(octaves):
    cells = 2 ** (o + 2)
    grid = rng.uniform(size=(cells + 1, cells + 1)).astype(np.float32)
    ys, xs = np.linspace(0, cells, h), np.linspace(0, cells, w)
    y0, x0 = np.minimum(ys.astype(int), cells - 1), np.minimum(xs.astype(int), cells - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None]
    g = (grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx) * (1 - fy) + \
        (grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx) * fy
    out += amp * g
    total += amp
    amp *= 0.5
  return out / total


def backdrop(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
  """A random background image [H, W, 3] in [0, 1]."""
  kind = rng.choice(["solid", "gradient", "stripes", "checker", "noise", "noise"])
  c0, c1 = random_color(rng), random_color(rng)
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  if kind == "solid":
    t = np.zeros((h, w), np.float32)
  elif kind == "gradient":
    a = rng.uniform(0, 2 * np.pi)
    t = (np.cos(a) * xx + np.sin(a) * yy)
    t = (t - t.min()) / max(np.ptp(t), 1e-6)
  elif kind in ("stripes", "checker"):
    a, period = rng.uniform(0, np.pi), rng.uniform(0.04, 0.25) * w
    u = np.cos(a) * xx + np.sin(a) * yy
    t = (np.floor(u / period) % 2).astype(np.float32)
    if kind == "checker":
      v = -np.sin(a) * xx + np.cos(a) * yy
      t = np.abs(t - (np.floor(v / period) % 2))
    t = 0.15 + 0.7 * t
  else:
    t = _value_noise(rng, h, w)
  img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
  img += (_value_noise(rng, h, w, 3)[..., None] - 0.5) * rng.uniform(0.0, 0.25)
  return np.clip(img, 0, 1).astype(np.float32)


def floor_texture(rng: np.random.Generator, xz: np.ndarray) -> np.ndarray:
  """Colours [N, 3] of floor points given their world x/z [N, 2] (tiles, planks or plain)."""
  kind = rng.choice(["tiles", "planks", "plain"])
  c0 = random_color(rng, sat=(0.0, 0.5), val=(0.25, 0.9))
  c1 = np.clip(c0 * rng.uniform(0.6, 0.9), 0, 1)
  a = rng.uniform(0, np.pi)
  u = np.cos(a) * xz[:, 0] + np.sin(a) * xz[:, 1]
  v = -np.sin(a) * xz[:, 0] + np.cos(a) * xz[:, 1]
  if kind == "tiles":
    s = rng.uniform(0.3, 0.8)
    t = (np.floor(u / s) + np.floor(v / s)) % 2
  elif kind == "planks":
    s = rng.uniform(0.1, 0.25)
    t = (np.floor(u / s) % 3) / 2.0
  else:
    t = 0.5 + 0.5 * np.sin(u * rng.uniform(1, 4)) * np.sin(v * rng.uniform(1, 4))
  t = t.astype(np.float32)[:, None]
  return (c0 * (1 - t) + c1 * t).astype(np.float32)


def lighting(rng: np.random.Generator) -> Light:
  """Light from the camera's hemisphere (camera axes: y down, z forward), with a weak highlight.

  Physical (one-sided) Lambert, so the side of the person turned away from
  the light falls into shade; the renderer's symmetric default would light
  it as if from the mirrored direction.
  """
  d = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-1.0, 0.1), -1.0])  # Towards the light.
  return Light(direction=tuple(d), ambient=float(rng.uniform(0.25, 0.55)), diffuse=float(rng.uniform(0.45, 0.85)),
               specular=float(rng.uniform(0.0, 0.2)), shininess=24.0, symmetric=False)


def finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
  """Lens blur, exposure, gamma and sensor noise; float [0, 1] -> uint8.

  The blur (sigma 0.3–0.9 px) also softens aliased silhouettes (the GL
  renderer anti-aliases them, its ray-cast fallback does not), which a real
  camera never shows.
  """
  from scipy.ndimage import gaussian_filter
  img = gaussian_filter(img, sigma=(rng.uniform(0.3, 0.9),) * 2 + (0,))
  img = img * rng.uniform(0.85, 1.15)
  img = np.clip(img, 0, 1) ** rng.uniform(0.85, 1.15)
  img = img + rng.normal(0.0, rng.uniform(0.0, 0.03), img.shape)
  return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def finish_capture(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
  """A camera's imperfections for the capture layout; float [0, 1] -> uint8.

  Lens blur (sigma 0.4–1.3 px) and, one frame in four, a short linear motion
  blur; vignetting; exposure, white balance and gamma; signal-dependent shot
  noise plus read noise; finally a JPEG round trip at quality 35–92 (block
  and ringing artefacts as in compressed video frames).
  """
  import io

  from PIL import Image
  from scipy.ndimage import gaussian_filter, uniform_filter1d
  h, w = img.shape[:2]
  img = gaussian_filter(img, sigma=(rng.uniform(0.4, 1.3),) * 2 + (0,))
  if rng.uniform() < 0.25:
    img = uniform_filter1d(img, size=int(rng.integers(3, 8)), axis=int(rng.integers(2)))
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  r2 = ((xx - 0.5 * w) ** 2 + (yy - 0.5 * h) ** 2) / (0.25 * (w * w + h * h))
  img = img * (1.0 - rng.uniform(0.0, 0.35) * r2)[..., None]
  img = img * rng.uniform(0.8, 1.2) * rng.uniform(0.92, 1.08, 3)
  img = np.clip(img, 0, 1) ** rng.uniform(0.85, 1.15)
  img = img + rng.normal(size=img.shape) * np.sqrt(rng.uniform(0.0, 0.0015) * img + rng.uniform(0.0, 0.02) ** 2)
  out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
  buf = io.BytesIO()
  Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(35, 93)))
  with Image.open(buf) as im:
    return np.asarray(im.convert("RGB"))
