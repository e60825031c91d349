"""Renderer: GL (moderngl/EGL) vs exact ray casting, projection, occlusion, visualisations."""

import numpy as np
import pytest
import trimesh

from scorehoi_jax.render import Camera, Light, Mesh, RenderError, available_backends, render
from scorehoi_jax.render import visualize

HAS_GL = "gl" in available_backends()
needs_gl = pytest.mark.skipif(not HAS_GL, reason="no EGL/OpenGL context on this machine")


def _scene():
  box = trimesh.creation.box((0.6, 0.8, 0.4))
  box.apply_translation((0.1, 0.0, 3.0))
  ball = trimesh.creation.icosphere(3, 0.3)
  ball.apply_translation((-0.2, 0.1, 2.5))
  return [Mesh(box.vertices, box.faces, (0.8, 0.3, 0.3)), Mesh(ball.vertices, ball.faces, (0.3, 0.3, 0.8))]


CAM = Camera((220.0, 230.0), (63.3, 58.7), 128, 120)


def _iou(a, b):
  return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


# Side light with a highlight and one-sided Lambert: exercises every term of the shading model.
SIDE_LIGHT = Light(direction=(0.7, -0.2, -0.6), ambient=0.2, diffuse=0.7, specular=0.4, shininess=16.0,
                   symmetric=False)


@needs_gl
@pytest.mark.parametrize("light", [None, SIDE_LIGHT], ids=["default_light", "side_light"])
def test_gl_matches_raycast_masks_and_depth(light):
  gl = render(_scene(), CAM, backend="gl", light=light)
  rc = render(_scene(), CAM, backend="raycast", light=light)
  for k in (1, 2):
    assert _iou(gl.instance == k, rc.instance == k) > 0.98
  both = (gl.instance == rc.instance) & (gl.instance > 0)
  assert both.sum() > 1000
  np.testing.assert_allclose(gl.depth[both], rc.depth[both], atol=1e-3)
  assert np.all(gl.depth[gl.instance == 0] == 0)
  # Same shading model: interior colours agree (edges differ by anti-aliasing).
  inner = both & (np.abs(np.diff(gl.instance.astype(int), axis=1, prepend=0)) == 0)
  assert np.abs(gl.rgb[inner].astype(int) - rc.rgb[inner]).mean() < 4


@needs_gl
def test_gl_sample_counts_in_one_thread():
  # Each sample count has its own EGL context in a thread; alternating them must not mix up
  # which context is current (it did: renders after a samples=1 call came out garbled).
  ref = render(_scene(), CAM, backend="gl")
  render(_scene(), Camera((100.0, 100.0), (32.0, 32.0), 65, 65), backend="gl", samples=1)
  again = render(_scene(), CAM, backend="gl")
  assert np.array_equal(ref.rgb, again.rgb) and np.array_equal(ref.instance, again.instance)
  aliased = render(_scene(), CAM, backend="gl", samples=1)
  assert np.array_equal(ref.instance, aliased.instance)


@pytest.mark.parametrize("backend", ["raycast", pytest.param("gl", marks=needs_gl)])
def test_masks_only(backend):
  # rgb=False skips shading: same masks and depth, and the colour is the background alone.
  full = render(_scene(), CAM, backend=backend)
  bare = render(_scene(), CAM, backend=backend, background=(0.2, 0.4, 0.6), rgb=False)
  assert np.array_equal(full.instance, bare.instance) and np.array_equal(full.depth, bare.depth)
  assert np.all(bare.rgb == np.array([51, 102, 153]))


@pytest.mark.parametrize("backend", ["raycast", pytest.param("gl", marks=needs_gl)])
def test_single_triangle_closed_form(backend):
  # A slanted triangle whose projection covers the pixel centres with x + y <= 10 of a 16 px image
  # (f = 2, c = 0); no centre lies on an edge, so the mask is exact whatever the fill rule.
  cam = Camera((2.0, 2.0), (0.0, 0.0), 16, 16)
  uv = np.array([[-0.5, -0.5], [10.75, -0.5], [-0.5, 10.75]])
  z = np.array([2.0, 3.0, 2.5])
  verts = np.concatenate([uv / 2.0 * z[:, None], z[:, None]], 1)
  out = render([Mesh(verts, np.array([[0, 1, 2]]))], cam, backend=backend)
  ys, xs = np.mgrid[0:16, 0:16]
  inside = (xs + ys) <= 10
  np.testing.assert_array_equal(out.instance == 1, inside)
  # Depth: the ray through (u, v) meets the triangle's plane n . p = n . v0 at z = n . v0 / n . (u/f, v/f, 1).
  n = np.cross(verts[1] - verts[0], verts[2] - verts[0])
  rays = np.stack([xs / 2.0, ys / 2.0, np.ones_like(xs, float)], -1)
  np.testing.assert_allclose(out.depth[inside], (n @ verts[0] / (rays @ n))[inside], rtol=1e-5)
  assert np.all(out.depth[~inside] == 0)


@pytest.mark.parametrize("backend", ["raycast", pytest.param("gl", marks=needs_gl)])
def test_light_closed_form(backend):
  # A square facing the camera on the optical axis (normal (0, 0, -1), view vector ~(0, 0, -1)).
  cam = Camera((100.0, 100.0), (32.0, 32.0), 65, 65)
  verts = np.array([[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.5, 0.5, 2.0], [-0.5, 0.5, 2.0]])
  faces = np.array([[0, 1, 2], [0, 2, 3]])
  color = np.array([0.8, 0.5, 0.2])

  def centre(light):
    return render([Mesh(verts, faces, color)], cam, backend=backend, light=light, samples=1).rgb[32, 32].astype(int)

  # Light along the view direction: n . l = 1, h = n, so the highlight is at full strength.
  head_on = Light(direction=(0.0, 0.0, -1.0), ambient=0.1, diffuse=0.5, specular=0.3)
  np.testing.assert_allclose(centre(head_on), np.rint(255 * np.clip(color * 0.6 + 0.3, 0, 1)), atol=1)
  # Light from behind the square: n . l = -0.8 (|n . l| = 0.8 if symmetric, else ambient only).
  behind = dict(direction=(0.6, 0.0, 0.8), ambient=0.1, diffuse=0.5)
  np.testing.assert_allclose(centre(Light(**behind)), np.rint(255 * color * (0.1 + 0.5 * 0.8)), atol=1)
  np.testing.assert_allclose(centre(Light(**behind, symmetric=False)), np.rint(255 * color * 0.1), atol=1)
  # The default light is the documented one: Light() and light=None render the same image.
  assert np.array_equal(render(_scene(), CAM, backend=backend).rgb, render(_scene(), CAM, backend=backend,
                                                                          light=Light()).rgb)


@pytest.mark.parametrize("backend", ["raycast", pytest.param("gl", marks=needs_gl)])
def test_projection_of_known_point(backend):
  # A tiny square facing the camera at a known 3D point must cover exactly the
  # pixel u = fx X / Z + cx, v = fy Y / Z + cy (pixel centres at integers).
  x, y, z = 0.31, -0.12, 2.0
  u, v = CAM.focal[0] * x / z + CAM.princpt[0], CAM.focal[1] * y / z + CAM.princpt[1]
  # Snap the point so that it projects exactly onto a pixel centre.
  u_i, v_i = int(round(u)), int(round(v))
  x, y = (u_i - CAM.princpt[0]) * z / CAM.focal[0], (v_i - CAM.princpt[1]) * z / CAM.focal[1]
  half = 0.3 * z / CAM.focal[0]  # 0.3 px half-width: covers only that pixel centre.
  verts = np.array([[x - half, y - half, z], [x + half, y - half, z], [x + half, y + half, z],
                    [x - half, y + half, z]])
  faces = np.array([[0, 1, 2], [0, 2, 3]])
  out = render([Mesh(verts, faces)], CAM, backend=backend)
  hits = np.argwhere(out.instance == 1)
  assert hits.tolist() == [[v_i, u_i]]
  assert out.depth[v_i, u_i] == pytest.approx(z, abs=1e-5)


@pytest.mark.parametrize("backend", ["raycast", pytest.param("gl", marks=needs_gl)])
def test_instance_ids_under_occlusion(backend):
  # Mesh 1 (far, large) is partly hidden by mesh 2 (near, small); ids follow list order.
  far = trimesh.creation.box((1.0, 1.0, 0.01))
  far.apply_translation((0, 0, 3.0))
  near = trimesh.creation.box((0.2, 0.2, 0.01))
  near.apply_translation((0, 0, 1.5))
  out = render([(far.vertices, far.faces), (near.vertices, near.faces)], CAM, backend=backend)
  cu, cv = int(round(CAM.princpt[0])), int(round(CAM.princpt[1]))
  assert out.instance[cv, cu] == 2
  assert out.depth[cv, cu] == pytest.approx(1.5 - 0.005, abs=1e-4)
  # Expected visible areas from the closed-form projections of the two squares.
  ys, xs = np.mgrid[:CAM.height, :CAM.width]
  xn, yn = (xs - CAM.princpt[0]) / CAM.focal[0], (ys - CAM.princpt[1]) / CAM.focal[1]
  in_near = (np.abs(xn * (1.5 - 0.005)) < 0.1) & (np.abs(yn * (1.5 - 0.005)) < 0.1)
  in_far = (np.abs(xn * (3.0 - 0.005)) < 0.5) & (np.abs(yn * (3.0 - 0.005)) < 0.5)
  assert _iou(out.instance == 2, in_near) > 0.95
  assert _iou(out.instance == 1, in_far & ~in_near) > 0.97
  assert out.instance[0, 0] == 0 and out.depth[0, 0] == 0


def test_background_and_errors():
  bg = np.full((CAM.height, CAM.width, 3), 17, np.uint8)
  out = render(_scene(), CAM, background=bg, backend="raycast")
  assert np.all(out.rgb[out.instance == 0] == 17)
  with pytest.raises(RenderError, match="mesh 1"):
    render([(np.zeros((3, 2)), np.array([[0, 1, 2]]))], CAM, backend="raycast")
  with pytest.raises(RenderError, match="unknown render backend"):
    render(_scene(), CAM, backend="vulkan")
  with pytest.raises(RenderError, match="background"):
    render(_scene(), CAM, background=np.zeros((5, 5, 3)), backend="raycast")
  with pytest.raises(RenderError, match="Light.direction"):
    Light(direction=(0.0, 0.0, 0.0))
  with pytest.raises(RenderError, match="Light.ambient"):
    Light(ambient=-0.1)
  with pytest.raises(RenderError, match="light must be"):
    render(_scene(), CAM, backend="raycast", light={"ambient": 0.5})


def test_visualisations():
  scene = _scene()
  img = np.full((CAM.height, CAM.width, 3), 200, np.uint8)
  over = visualize.overlay(img, scene, CAM, alpha=1.0, backend="raycast")
  ref = render(scene, CAM, backend="raycast")
  fg = ref.instance > 0
  assert np.all(over[~fg] == 200) and np.array_equal(over[fg], ref.rgb[fg])
  # A 90° side view about the vertical axis of a wide, shallow box shows it narrow.
  slab = trimesh.creation.box((1.0, 0.3, 0.05))
  slab.apply_translation((0, 0, 3.0))
  front = render([(slab.vertices, slab.faces)], CAM, backend="raycast").instance > 0
  side = visualize.side_view([(slab.vertices, slab.faces)], CAM, backend="raycast")
  side_mask = np.any(side != 255, -1)
  # Height: the slab now spans z 2.5..3.5, so its near end projects up to 3.0/2.5 taller.
  h_front, h_side = front.any(1).sum(), side_mask.any(1).sum()
  assert h_front <= h_side <= h_front * 3.0 / 2.5 + 2
  assert side_mask.any(0).sum() < 0.2 * front.any(0).sum()  # Much narrower.
  c = visualize.heat_colors(np.array([0.0, 1.0, 0.5]))
  np.testing.assert_allclose(c[0], [0.20, 0.25, 0.70])
  np.testing.assert_allclose(c[1], [0.85, 0.10, 0.10])
  assert visualize.hstack([img, img[:50]]).shape == (CAM.height, 2 * CAM.width + 4, 3)


def test_backend_choice_and_fallback(monkeypatch):
  import scorehoi_jax.render as r
  monkeypatch.setenv(r.ENV_VAR, "raycast")
  assert r.resolve_backend() == "raycast"
  assert r.resolve_backend("gl") == "gl"  # The argument wins over the environment.
  monkeypatch.setenv(r.ENV_VAR, "auto")
  monkeypatch.setattr(r, "_AUTO", {})
  monkeypatch.setattr(r, "_gl_error", lambda samples: "RuntimeError: no EGL display")
  with pytest.warns(RuntimeWarning, match="no EGL display.*falling back to trimesh ray casting"):
    assert r.resolve_backend() == "raycast"
  out = render(_scene(), CAM)  # Chosen once; no second warning, and it renders.
  assert (out.instance > 0).any()


def test_levelled_side_view_turns_about_the_true_vertical():
  """A tall slab standing on a floor, seen by a camera pitched down by 30°: turned about the camera's y axis,
  its side view leans by the pitch; levelled by the floor's normal first (visualize.level), it must match the
  side view of the same slab seen by a level camera, and the unlevelled view must not."""
  from scipy.spatial.transform import Rotation
  slab = trimesh.creation.box((0.6, 1.7, 0.2))  # Wide, tall (world vertical = camera −y when level), thin.
  pitch = Rotation.from_euler("x", 30, degrees=True).as_matrix()  # World → pitched camera.
  level_cam = [Mesh(np.asarray(slab.vertices) + (0.0, 0.0, 3.0), slab.faces)]
  pitched = [Mesh(np.asarray(slab.vertices) @ pitch.T + (0.0, 0.0, 3.0), slab.faces)]
  up = pitch @ np.array([0.0, -1.0, 0.0])  # The floor's normal as the pitched camera sees it.
  view = lambda ms, **kw: np.any(visualize.framed_view(ms, 96, angle_deg=90.0, backend="raycast", **kw) != 255, -1)
  want = view(level_cam)
  assert _iou(view(pitched, up=up), want) >= 0.97
  assert _iou(view(pitched), want) < 0.8
