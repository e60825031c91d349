"""Renderer: GL (moderngl/EGL) vs exact ray casting, projection, occlusion, visualisations."""

import numpy as np
import pytest
import trimesh

from scorehoi_jax.render import Camera, Mesh, RenderError, available_backends, render
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


@needs_gl
def test_gl_matches_raycast_masks_and_depth():
  gl = render(_scene(), CAM, backend="gl")
  rc = render(_scene(), CAM, backend="raycast")
  for k in (1, 2):
    assert _iou(gl.instance == k, rc.instance == k) > 0.98
  both = (gl.instance == rc.instance) & (gl.instance > 0)
  assert both.sum() > 1000
  np.testing.assert_allclose(gl.depth[both], rc.depth[both], atol=1e-3)
  assert np.all(gl.depth[gl.instance == 0] == 0)
  # Same shading model: interior colours agree (edges differ by anti-aliasing).
  inner = both & (np.abs(np.diff(gl.instance.astype(int), axis=1, prepend=0)) == 0)
  assert np.abs(gl.rgb[inner].astype(int) - rc.rgb[inner]).mean() < 4


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
