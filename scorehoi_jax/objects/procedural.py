"""A procedural library of everyday objects (BEHAVE's 20 categories in spirit).

Each object is a union of watertight trimesh primitives (boxes, cylinders,
spheres, capsules, tubes) placed without booleans, so construction never
fails; the SDF treats it as a union (min over parts, see sdf_build.py).
Canonical frame: metres, +Y up; floor-standing objects rest on y = 0, hand-held
ones (basketball, keyboard) are centred at the origin; all are centred in x/z.
The front of an object (a chair's seat edge, a monitor's screen) faces +Z.

Nominal sizes are typical real-world sizes of the BEHAVE items (read off
product sizes of such objects, not from the BEHAVE meshes, which are not
redistributable). ``seed=None`` gives the nominal object; an integer seed gives
a reproducible instance with each size parameter scaled by U[0.88, 1.12].
Seeds from ``VARIANT_SEED_BASE`` on give *shape variants* instead, for the
synthetic generator's capture layout: wider size ranges, boxes of any aspect
ratio, office chairs with or without wheels and armrests, four-leg or
cantilever side chairs, four-leg or pedestal tables with square or round
tops. Below that base every object is exactly as it always was (the shipped
model and the tests rely on the nominal and jittered templates), so the
variants live in their own builders rather than as options of the old ones.
These are stand-ins for development and synthetic data, not the BEHAVE meshes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import trimesh

# (category, floor_standing).
CATEGORIES: dict[str, bool] = {
    "backpack": True, "basketball": False, "boxlarge": True, "boxlong": True, "boxmedium": True,
    "boxsmall": True, "boxtiny": True, "chairblack": True, "chairwood": True, "keyboard": False,
    "monitor": True, "plasticcontainer": True, "stool": True, "suitcase": True, "tablesmall": True,
    "tablesquare": True, "toolbox": True, "trashbin": True, "yogaball": True, "yogamat": True,
}

_MAX_EDGE = 0.04  # Parts are subdivided to this edge length so vertices cover the surface.
VARIANT_SEED_BASE = 10_000_000  # Instance seeds from here on are shape variants (module docstring).


class _Sizer:
  """Draws size parameters: nominal values, or jittered ones from a seed."""

  def __init__(self, seed: int | None):
    self._rng = None if seed is None else np.random.default_rng(seed)
    self.variant = seed is not None and seed >= VARIANT_SEED_BASE

  def __call__(self, nominal: float, spread: float = 0.12) -> float:
    if self._rng is None:
      return float(nominal)
    if self.variant:  # Variants spread wider than the old instances.
      spread = 1.7 * spread
    return float(nominal * self._rng.uniform(1.0 - spread, 1.0 + spread))

  def chance(self, p: float) -> bool:
    """A style switch of a variant (only variant builders call this)."""
    return bool(self._rng.uniform() < p)

  def count(self, lo: int, hi: int) -> int:
    """An integer in [lo, hi] (a variant's number of slats, say)."""
    return int(self._rng.integers(lo, hi + 1))

  def log_uniform(self, lo: float, hi: float) -> float:
    return float(np.exp(self._rng.uniform(np.log(lo), np.log(hi))))


def _box(extents, center, rot_x_deg: float = 0.0) -> trimesh.Trimesh:
  tf = trimesh.transformations.rotation_matrix(np.radians(rot_x_deg), [1, 0, 0])
  tf[:3, 3] = center
  return trimesh.creation.box(extents=extents, transform=tf)


def _rod(p0, p1, radius: float, sections: int = 16) -> trimesh.Trimesh:
  return trimesh.creation.cylinder(radius=radius, segment=[p0, p1], sections=sections)


def _disc(radius: float, height: float, y0: float, sections: int = 40) -> trimesh.Trimesh:
  """Upright cylinder from y0 to y0 + height."""
  return trimesh.creation.cylinder(radius=radius, segment=[[0, y0, 0], [0, y0 + height, 0]], sections=sections)


def _sphere(radius: float, center, subdivisions: int = 3) -> trimesh.Trimesh:
  m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
  m.apply_translation(center)
  return m


def _legs(width, depth, height, inset, radius=None, square=None):
  """Four vertical legs under a w x d top; square legs if ``square`` is a side length."""
  out = []
  for sx in (-1, 1):
    for sz in (-1, 1):
      x, z = sx * (width / 2 - inset), sz * (depth / 2 - inset)
      if square is not None:
        out.append(_box([square, height, square], [x, height / 2, z]))
      else:
        out.append(_rod([x, 0, z], [x, height, z], radius))
  return out


# ------------------------------------------------------------------------------------------------
# Builders: each takes a _Sizer and returns the list of parts.
# ------------------------------------------------------------------------------------------------


def _cuboid(nominal):
  def build(s: _Sizer):
    w, h, d = (s(x) for x in nominal)
    return [_box([w, h, d], [0, h / 2, 0])]
  return build


def _backpack(s):
  w, h, d = s(0.30), s(0.44), s(0.17)
  parts = [_box([w, h, d], [0, h / 2, 0]),
           _box([0.8 * w, 0.4 * h, 0.35 * d], [0, 0.28 * h, d / 2 + 0.17 * d]),  # Front pocket.
           trimesh.creation.capsule(height=w * 0.9, radius=d * 0.5,  # Rounded top.
                                    transform=_yaw_to_x([0, h, 0]))]
  for sx in (-1, 1):  # Shoulder straps on the back (-Z).
    parts.append(_box([0.06, 0.8 * h, 0.025], [sx * 0.28 * w, 0.52 * h, -d / 2 - 0.0125]))
  parts.append(_rod([-0.06, h + 0.5 * d, 0], [0.06, h + 0.5 * d, 0], 0.012))  # Grab handle.
  return parts


def _yaw_to_x(center):
  """Transform putting a +Z-axis primitive along X at ``center``."""
  tf = trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0])
  tf[:3, 3] = center
  return tf


def _basketball(s):
  return [_sphere(s(0.12, 0.03), [0, 0, 0], subdivisions=4)]


def _chairblack(s):
  seat_h, seat_w, seat_d = s(0.48), s(0.50), s(0.48)
  back_h = s(0.55)
  parts = [_box([seat_w, 0.08, seat_d], [0, seat_h, 0]),
           _box([0.92 * seat_w, back_h, 0.07], [0, seat_h + 0.04 + back_h / 2, -seat_d / 2 - 0.02], rot_x_deg=-8),
           _disc(0.03, seat_h - 0.14, 0.10),  # Gas column.
           _disc(0.05, 0.05, 0.07)]
  arm_y = seat_h + 0.22
  for sx in (-1, 1):  # Armrests on posts.
    x = sx * (seat_w / 2 + 0.03)
    parts.append(_box([0.05, 0.03, 0.28], [x, arm_y, 0.0]))
    parts.append(_box([0.03, 0.22, 0.04], [x, seat_h + 0.1, -0.02]))
  r = s(0.32)
  for k in range(5):  # Five-star base with casters.
    a = 2 * np.pi * k / 5
    tip = np.array([r * np.sin(a), 0.085, r * np.cos(a)])
    parts.append(_rod([0, 0.085, 0], tip, 0.022))
    parts.append(_sphere(0.03, [tip[0], 0.03, tip[2]], subdivisions=2))
  return parts


def _chairwood(s):
  seat_h, w, d = s(0.45), s(0.44), s(0.42)
  back_h = s(0.45)
  leg = 0.04
  parts = [_box([w, 0.035, d], [0, seat_h - 0.0175, 0])]
  parts += _legs(w, d, seat_h - 0.035, leg / 2, square=leg)
  for sx in (-1, 1):  # Back posts continue the rear legs upwards.
    parts.append(_box([leg, back_h, leg], [sx * (w / 2 - leg / 2), seat_h + back_h / 2, -d / 2 + leg / 2]))
  parts.append(_box([w, 0.08, 0.025], [0, seat_h + back_h - 0.04, -d / 2 + leg / 2]))  # Top rail.
  for x in (-0.1, 0.0, 0.1):  # Vertical slats.
    parts.append(_box([0.035, back_h - 0.1, 0.015], [x * w / 0.44, seat_h + (back_h - 0.1) / 2, -d / 2 + leg / 2]))
  parts.append(_box([w - 2 * leg, 0.03, 0.02], [0, 0.15, d / 2 - leg / 2]))  # Stretcher.
  return parts


def _keyboard(s):
  w, d = s(0.44), s(0.14)
  parts = [_box([w, 0.02, d], [0, 0, 0])]
  for row in range(5):  # Key rows as raised strips.
    z = -d / 2 + 0.02 + row * (d - 0.04) / 4
    parts.append(_box([0.9 * w, 0.012, 0.016], [0, 0.014, z]))
  return parts


def _monitor(s):
  sw, sh = s(0.60), s(0.36)
  neck = s(0.14)
  return [_box([0.24, 0.015, 0.18], [0, 0.0075, 0]),
          _box([0.05, neck + 0.05, 0.025], [0, 0.015 + (neck + 0.05) / 2, -0.04]),
          _box([sw, sh, 0.035], [0, 0.015 + neck + sh / 2, -0.01])]


def _plasticcontainer(s):
  w, h, d, t = s(0.55), s(0.30), s(0.38), 0.012
  return [_box([w, t, d], [0, t / 2, 0]),  # Open-top tub: bottom, four walls and a lip.
          _box([w, h, t], [0, h / 2, d / 2 - t / 2]), _box([w, h, t], [0, h / 2, -d / 2 + t / 2]),
          _box([t, h, d - 2 * t], [w / 2 - t / 2, h / 2, 0]), _box([t, h, d - 2 * t], [-w / 2 + t / 2, h / 2, 0]),
          _box([w + 0.03, 0.02, 0.03], [0, h - 0.01, d / 2]), _box([w + 0.03, 0.02, 0.03], [0, h - 0.01, -d / 2]),
          _box([0.03, 0.02, d], [w / 2, h - 0.01, 0]), _box([0.03, 0.02, d], [-w / 2, h - 0.01, 0])]


def _stool(s):
  h, r = s(0.46), s(0.17)
  parts = [_disc(r, 0.04, h - 0.04)]
  for k in range(4):  # Splayed legs and a foot ring.
    a = np.pi / 4 + k * np.pi / 2
    top = [0.7 * r * np.cos(a), h - 0.04, 0.7 * r * np.sin(a)]
    foot = [1.15 * r * np.cos(a), 0.0, 1.15 * r * np.sin(a)]
    parts.append(_rod(foot, top, 0.015))
  ring = trimesh.creation.torus(0.92 * r, 0.01, major_sections=32, minor_sections=8)
  ring.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
  ring.apply_translation([0, 0.18, 0])
  parts.append(ring)
  return parts


def _suitcase(s):
  w, h, d = s(0.42), s(0.62), s(0.25)
  wheel = 0.035
  parts = [_box([w, h, d], [0, wheel * 2 + h / 2, 0])]
  top = wheel * 2 + h
  for sx in (-1, 1):
    parts.append(_rod([sx * 0.1, top, -d / 2 + 0.03], [sx * 0.1, top + 0.25, -d / 2 + 0.03], 0.01))
    for sz in (-1, 1):
      parts.append(trimesh.creation.cylinder(radius=wheel, segment=[[sx * (w / 2 - 0.04) - 0.012, wheel, sz * (d / 2 - 0.04)],
                                                                    [sx * (w / 2 - 0.04) + 0.012, wheel, sz * (d / 2 - 0.04)]],
                                             sections=16))
  parts.append(_rod([-0.11, top + 0.25, -d / 2 + 0.03], [0.11, top + 0.25, -d / 2 + 0.03], 0.014))
  return parts


def _table(width, depth, height, top_t, leg):
  def build(s):
    w, d, h = s(width), s(depth), s(height)
    return [_box([w, top_t, d], [0, h - top_t / 2, 0])] + _legs(w, d, h - top_t, leg, square=leg)
  return build


def _toolbox(s):
  w, h, d = s(0.45), s(0.20), s(0.22)
  parts = [_box([w, h, d], [0, h / 2, 0]), _box([w + 0.01, 0.02, d + 0.01], [0, h - 0.02, 0])]  # Lid seam.
  for sx in (-1, 1):
    parts.append(_box([0.02, 0.07, 0.03], [sx * 0.12, h + 0.035, 0]))
  parts.append(_rod([-0.13, h + 0.07, 0], [0.13, h + 0.07, 0], 0.014))
  return parts


def _trashbin(s):
  r, h, t = s(0.15), s(0.40), 0.008
  return [trimesh.creation.annulus(r_min=r - t, r_max=r, height=h,
                                   transform=_upright([0, h / 2, 0]), sections=40),
          _disc(r - t, 0.01, 0.0),
          trimesh.creation.annulus(r_min=r - t, r_max=r + 0.01, height=0.02,
                                   transform=_upright([0, h - 0.01, 0]), sections=40)]


def _upright(center):
  """Transform turning trimesh's +Z-axis primitives to +Y at ``center``."""
  tf = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])
  tf[:3, 3] = center
  return tf


def _yogaball(s):
  r = s(0.325, 0.08)
  return [_sphere(r, [0, r, 0], subdivisions=4)]


def _yogamat(s):
  r, length = s(0.065), s(0.61, 0.04)  # Rolled up, lying along x, as carried in BEHAVE.
  return [trimesh.creation.cylinder(radius=r, segment=[[-length / 2, r, 0], [length / 2, r, 0]], sections=40)]


_BUILDERS: dict[str, Callable[[_Sizer], list]] = {
    "backpack": _backpack, "basketball": _basketball,
    "boxlarge": _cuboid((0.60, 0.45, 0.45)), "boxlong": _cuboid((0.25, 0.80, 0.25)),
    "boxmedium": _cuboid((0.40, 0.32, 0.32)), "boxsmall": _cuboid((0.30, 0.22, 0.24)),
    "boxtiny": _cuboid((0.18, 0.12, 0.15)), "chairblack": _chairblack, "chairwood": _chairwood,
    "keyboard": _keyboard, "monitor": _monitor, "plasticcontainer": _plasticcontainer, "stool": _stool,
    "suitcase": _suitcase, "tablesmall": _table(0.60, 0.45, 0.50, 0.025, 0.035),
    "tablesquare": _table(0.80, 0.80, 0.74, 0.03, 0.05), "toolbox": _toolbox, "trashbin": _trashbin,
    "yogaball": _yogaball, "yogamat": _yogamat,
}


# ------------------------------------------------------------------------------------------------
# Shape variants (seeds >= VARIANT_SEED_BASE). Categories without an entry here use their
# ordinary builder with the variant's wider size jitter.
# ------------------------------------------------------------------------------------------------


def _cuboid_variant(nominal):
  """A box of any aspect ratio: each side scaled independently by a factor in [0.55, 1.8]."""
  def build(s: _Sizer):
    w, h, d = (x * s.log_uniform(0.55, 1.8) for x in nominal)
    return [_box([w, h, d], [0, h / 2, 0])]
  return build


def _office_chair(s):
  """Swivel chair: five-star base on casters or on glides, armrests or none, low or high back."""
  seat_h, seat_w, seat_d = s(0.48), s(0.50), s(0.48)
  back_h = 0.55 * s.log_uniform(0.6, 1.35)
  wheels, arms = s.chance(0.65), s.chance(0.6)
  base_y = 0.085 if wheels else 0.035  # Casters lift the star.
  parts = [_box([seat_w, 0.08, seat_d], [0, seat_h, 0]),
           _box([0.92 * seat_w, back_h, 0.07], [0, seat_h + 0.04 + back_h / 2, -seat_d / 2 - 0.02],
                rot_x_deg=-s.log_uniform(2.0, 14.0)),
           _disc(0.03, seat_h - base_y - 0.04, base_y + 0.015),  # Gas column.
           _disc(0.05, 0.05, base_y - 0.015)]
  if arms:
    arm_y = seat_h + s(0.22)
    for sx in (-1, 1):
      x = sx * (seat_w / 2 + 0.03)
      parts.append(_box([0.05, 0.03, 0.28], [x, arm_y, 0.0]))
      parts.append(_box([0.03, arm_y - seat_h, 0.04], [x, 0.5 * (seat_h + arm_y), -0.02]))
  r = s(0.32)
  for k in range(5):
    a = 2 * np.pi * k / 5
    tip = np.array([r * np.sin(a), base_y, r * np.cos(a)])
    parts.append(_rod([0, base_y, 0], tip, 0.022))
    if wheels:
      parts.append(_sphere(0.03, [tip[0], 0.03, tip[2]], subdivisions=2))
    else:  # Flat glide under each tip.
      parts.append(_disc(0.03, 0.014, 0.0, sections=16))
      parts[-1].apply_translation([tip[0], 0.0, tip[2]])
  return parts


def _side_chair(s):
  """A four-leg chair (slatted or panel back) or a cantilever chair (tubular, no rear legs)."""
  seat_h, w, d = s(0.45), s(0.44), s(0.42)
  back_h = s(0.45)
  if s.chance(0.45):  # Cantilever: per side a tube from the seat front down to a floor runner.
    r = 0.012
    parts = [_box([w, 0.04, d], [0, seat_h - 0.02, 0])]
    for sx in (-1, 1):
      x = sx * (w / 2 - 0.03)
      front = [x, seat_h - 0.04, d / 2 - 0.03]
      foot = [x, r, d / 2 + 0.04]
      parts += [_rod(front, foot, r), _rod(foot, [x, r, -d / 2 + 0.02], r),
                _rod([x, seat_h - 0.04, -d / 2 + 0.02], [x, seat_h + back_h, -d / 2 - 0.04], r)]
    parts.append(_rod([-(w / 2 - 0.03), r, d / 2 + 0.04], [w / 2 - 0.03, r, d / 2 + 0.04], r))
    parts.append(_box([w - 0.02, 0.6 * back_h, 0.02], [0, seat_h + 0.65 * back_h, -d / 2 - 0.02], rot_x_deg=-6))
    return parts
  leg = s(0.04, 0.25)
  parts = [_box([w, 0.035, d], [0, seat_h - 0.0175, 0])]
  parts += _legs(w, d, seat_h - 0.035, leg / 2, square=leg)
  for sx in (-1, 1):
    parts.append(_box([leg, back_h, leg], [sx * (w / 2 - leg / 2), seat_h + back_h / 2, -d / 2 + leg / 2]))
  parts.append(_box([w, 0.08, 0.025], [0, seat_h + back_h - 0.04, -d / 2 + leg / 2]))
  slats = s.count(0, 4)
  if slats == 0:  # Solid back panel.
    parts.append(_box([w - 2 * leg, back_h - 0.1, 0.015], [0, seat_h + (back_h - 0.1) / 2, -d / 2 + leg / 2]))
  for x in (np.linspace(-0.3, 0.3, slats) * w if slats > 1 else [0.0] * slats):
    parts.append(_box([0.035, back_h - 0.1, 0.015], [x, seat_h + (back_h - 0.1) / 2, -d / 2 + leg / 2]))
  return parts


def _table_variant(width, depth, height, top_t, leg):
  """Four legs (square or round) or a pedestal (column on a disc or a cross foot); square or round top."""
  def build(s):
    w, d, h = s(width), s(depth), s(height)
    pedestal = s.chance(0.45)
    if pedestal and s.chance(0.5):  # Round top.
      r = 0.5 * max(w, d)
      top = [_disc(r, top_t, h - top_t, sections=48)]
    else:
      top = [_box([w, top_t, d], [0, h - top_t / 2, 0])]
    if not pedestal:
      if s.chance(0.5):
        return top + _legs(w, d, h - top_t, leg, square=leg)
      return top + _legs(w, d, h - top_t, leg, radius=0.5 * leg)
    col = s(0.045, 0.3)
    parts = top + [_disc(col, h - top_t - 0.02, 0.02, sections=24)]
    foot = 0.35 * min(w, d) + 0.1
    if s.chance(0.5):
      parts.append(_disc(foot, 0.02, 0.0, sections=48))
    else:
      parts += [_box([2 * foot, 0.03, 0.06], [0, 0.015, 0]), _box([0.06, 0.03, 2 * foot], [0, 0.015, 0])]
    return parts
  return build


_VARIANTS: dict[str, Callable[[_Sizer], list]] = {
    "boxlarge": _cuboid_variant((0.60, 0.45, 0.45)), "boxlong": _cuboid_variant((0.25, 0.80, 0.25)),
    "boxmedium": _cuboid_variant((0.40, 0.32, 0.32)), "boxsmall": _cuboid_variant((0.30, 0.22, 0.24)),
    "boxtiny": _cuboid_variant((0.18, 0.12, 0.15)), "chairblack": _office_chair, "chairwood": _side_chair,
    "tablesmall": _table_variant(0.60, 0.45, 0.50, 0.025, 0.035),
    "tablesquare": _table_variant(0.80, 0.80, 0.74, 0.03, 0.05),
}


def procedural_names() -> list[str]:
  return sorted(_BUILDERS)


def build_procedural(category: str, seed: int | None = None):
  """Build a procedural object in its canonical frame.

  Args:
    category: one of ``procedural_names()``.
    seed: None for the nominal object, an int for a jittered instance (a shape
      variant from ``VARIANT_SEED_BASE`` on).

  Returns:
    (mesh, parts): the concatenated trimesh and the list of its watertight
    parts (same coordinates), both subdivided to edges <= 4 cm.

  Raises:
    KeyError: for an unknown category (the message lists the known ones).
  """
  if category not in _BUILDERS:
    raise KeyError(f"unknown procedural object {category!r}; known: {', '.join(procedural_names())}")
  sizer = _Sizer(seed)
  builder = _VARIANTS.get(category, _BUILDERS[category]) if sizer.variant else _BUILDERS[category]
  parts = builder(sizer)
  parts = [_subdivided(p) for p in parts]
  mesh = trimesh.util.concatenate(parts)
  lo, hi = mesh.bounds
  shift = -0.5 * (lo + hi)
  if CATEGORIES[category]:
    shift[1] = -lo[1]  # Base on the floor.
  for p in parts:
    p.apply_translation(shift)
  mesh = trimesh.util.concatenate(parts)
  return mesh, parts


def _subdivided(part: trimesh.Trimesh) -> trimesh.Trimesh:
  v, f = trimesh.remesh.subdivide_to_size(part.vertices, part.faces, max_edge=_MAX_EDGE, max_iter=6)
  return trimesh.Trimesh(v, f, process=True)
