"""Shape variants of the procedural library, and the canonical objects left exactly as they were.

The checksums below were computed on the library before the variants were
added (commit 64dc2e3): the shipped model and the tests use the nominal
templates and the jittered instances (seeds below VARIANT_SEED_BASE), so
those must never change.
"""

import hashlib

import numpy as np
import trimesh

from scorehoi_jax.objects import get_object, list_objects, procedural

# sha256 (first 16 hex) of vertices (rounded to 1 µm) and faces of seeds None, 0, 7, 100000, 100007, under
# trimesh 5.2 (requirements.txt: trimesh 5 changed chairblack's mesh; the data and shipped model use 5.2).
MESH_SUMS = {
    'backpack': '688fce296ab7f8a0',
    'basketball': '8f39369fc0314cea',
    'boxlarge': '62e06b40bf742ac4',
    'boxlong': '10c850cbbb90000b',
    'boxmedium': 'fc65fca3758be655',
    'boxsmall': 'f70e45641bcec3d1',
    'boxtiny': '7cf076de7c2d53c9',
    'chairblack': '8bb5ecda3154b3a2',
    'chairwood': '7bfd9716c833ead1',
    'keyboard': '4bac4f710f9b9aff',
    'monitor': 'e90db55a2cbdb1db',
    'plasticcontainer': '418f2e1e257069e3',
    'stool': '32139877d35a8c3e',
    'suitcase': '3a8a2a5a9f1d162b',
    'tablesmall': 'bc09d1158c87cf91',
    'tablesquare': '87cea8b262f35495',
    'toolbox': 'd0fd753a26c106f2',
    'trashbin': 'd3a22d1e9cb8418e',
    'yogaball': '647af414e95da462',
    'yogamat': '4b80ea1acfa2c2eb',
}
# sha256 (first 16 hex) of get_object(name).template (nominal), rounded to 1 µm.
TEMPLATE_SUMS = {
    'backpack': 'ce9d5964cef10419',
    'basketball': '2fcebbdd14a43e5d',
    'boxlarge': 'a260d7b56f3368de',
    'boxlong': '9648f2155c3817d5',
    'boxmedium': 'af7ba96a00cd1f2d',
    'boxsmall': '8cd26d71ebef1614',
    'boxtiny': '091818c2f22782f2',
    'chairblack': '31726b3ddf167acf',
    'chairwood': 'c38344264c859160',
    'keyboard': '2bc2c77fe6dd1832',
    'monitor': 'aa2e25bf7d2213b7',
    'plasticcontainer': '69abd5d18fcf9325',
    'stool': '03fa3e2b81a720b3',
    'suitcase': '1e6749dbeef12ec7',
    'tablesmall': '84ef967a852118d5',
    'tablesquare': '992c0f44f942b79d',
    'toolbox': '31edb72c6a15ad12',
    'trashbin': '48f397878eaab5f0',
    'yogaball': 'c50231af3ca40e5d',
    'yogamat': '7caf0ae070a9b189',
}


def _digest(*arrays) -> str:
  h = hashlib.sha256()
  for a in arrays:
    h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()[:16]


def test_canonical_meshes_are_unchanged():
  assert sorted(MESH_SUMS) == procedural.procedural_names()
  for name, want in MESH_SUMS.items():
    arrays = []
    for seed in (None, 0, 7, 100000, 100007):
      mesh, _ = procedural.build_procedural(name, seed)
      arrays += [np.asarray(mesh.vertices, np.float64).round(6), np.asarray(mesh.faces, np.int64)]
    assert _digest(*arrays) == want, name


def test_canonical_templates_are_unchanged():
  assert sorted(TEMPLATE_SUMS) == list_objects()
  for name, want in TEMPLATE_SUMS.items():
    assert _digest(np.asarray(get_object(name).template, np.float64).round(6)) == want, name


def _variants(name, num=12):
  return [procedural.build_procedural(name, procedural.VARIANT_SEED_BASE + k) for k in range(num)]


def test_variants_are_watertight_on_the_floor_and_centred():
  for name in ("chairblack", "chairwood", "tablesquare", "tablesmall", "boxlarge", "stool"):
    for mesh, parts in _variants(name, 6):
      assert all(p.is_watertight for p in parts), name
      lo, hi = mesh.bounds
      assert abs(lo[1]) < 1e-9 and np.allclose(0.5 * (lo + hi)[[0, 2]], 0.0, atol=1e-9), name


def test_box_variants_span_many_aspect_ratios():
  ratios = []
  for mesh, _ in _variants("boxmedium", 16):
    ext = np.sort(mesh.extents)
    ratios.append(ext[2] / ext[0])
  # The nominal box is 0.40 x 0.32 x 0.32 (ratio 1.25); variants reach cubes and slabs.
  assert min(ratios) < 1.3 and max(ratios) > 2.2, ratios


def test_chair_and_table_variants_differ_in_kind():
  # Office chairs: on casters (spheres) or glides; side chairs: four legs or a cantilever whose only floor
  # contact is two runners and a cross tube (no rear legs); tables: four legs or one pedestal.
  office = [sum(len(p.vertices) > 100 and abs(p.bounds[0][1]) < 1e-6 and p.extents[1] > 0.05 for p in parts)
            for _, parts in _variants("chairblack")]
  assert len(set(office)) > 1
  side = {len([p for p in parts if p.bounds[0][1] < 1e-6]) for _, parts in _variants("chairwood")}
  assert {3, 4} <= side, side  # 3: runners + cross tube (cantilever); 4: legs.
  table_feet = {len([p for p in parts if p.bounds[0][1] < 1e-6]) for _, parts in _variants("tablesquare")}
  assert 4 in table_feet and (1 in table_feet or 2 in table_feet), table_feet


def test_variant_instances_load_through_the_registry():
  seed = procedural.VARIANT_SEED_BASE + 3
  obj = get_object("boxlarge", seed=seed)
  mesh, _ = procedural.build_procedural("boxlarge", seed)
  np.testing.assert_array_equal(obj.vertices, mesh.vertices)
  assert obj.template.shape == (64, 3)
  assert trimesh.Trimesh(obj.vertices, obj.faces).is_watertight
