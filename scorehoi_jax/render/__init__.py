"""Offscreen rendering of camera-frame meshes: RGB, instance ids and depth.

``render(meshes, camera)`` is the one entry point. Backends:
- ``"gl"``: moderngl over headless EGL (primary; Mesa llvmpipe on CPU, the
  NVIDIA driver on GPU machines). System packages: libegl1 libgl1
  libgl1-mesa-dri.
- ``"raycast"``: trimesh + embreex ray casting (fallback; no system packages).

The backend is chosen by the ``backend`` argument, else the environment
variable ``SCOREHOI_RENDER_BACKEND`` (gl | raycast | auto), else automatically:
the first call tries to create an EGL context and, if that fails, warns once
with the reason and uses ray casting from then on.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Sequence


from scorehoi_jax.render.core import (
    Camera,
    Light,
    Mesh,
    RenderError,
    RenderOutput,
    background_array,
    build_scene,
    check_camera,
    check_light,
)

BACKENDS = ("gl", "raycast")
ENV_VAR = "SCOREHOI_RENDER_BACKEND"

_AUTO: dict = {}
_AUTO_LOCK = threading.Lock()


def _gl_error(samples: int) -> str | None:
  """None if a GL renderer works in this thread, else the reason it does not."""
  try:
    from scorehoi_jax.render.gl import get_gl_renderer
    get_gl_renderer(samples)
    return None
  except Exception as e:  # ImportError, EGL/GL load errors: all mean "no GL here".
    return f"{type(e).__name__}: {e}"


def resolve_backend(backend: str | None = None, samples: int = 4) -> str:
  """The backend a call with these arguments would use."""
  choice = (backend or os.environ.get(ENV_VAR) or "auto").lower()
  if choice not in BACKENDS + ("auto",):
    raise RenderError(f"unknown render backend {choice!r} (from "
                      f"{'the argument' if backend else ENV_VAR}); choose one of gl, raycast, auto.")
  if choice != "auto":
    return choice
  with _AUTO_LOCK:
    if "choice" not in _AUTO:
      err = _gl_error(samples)
      if err is None:
        _AUTO["choice"] = "gl"
      else:
        warnings.warn(
            f"OpenGL/EGL rendering is unavailable ({err}); falling back to trimesh ray casting "
            "(slower, no anti-aliasing). Install libegl1 libgl1 libgl1-mesa-dri and the moderngl "
            f"package for the fast path, or set {ENV_VAR}=raycast to silence this.", RuntimeWarning,
            stacklevel=3)
        _AUTO["choice"] = "raycast"
    return _AUTO["choice"]


def available_backends() -> list[str]:
  """Backends that work in this process (gl only if an EGL context can be made)."""
  out = ["gl"] if _gl_error(4) is None else []
  return out + ["raycast"]


def backend_info(backend: str | None = None) -> str:
  """A line naming the backend and, for GL, the OpenGL renderer (llvmpipe or a GPU)."""
  b = resolve_backend(backend)
  if b == "gl":
    from scorehoi_jax.render.gl import get_gl_renderer
    return get_gl_renderer().info
  from scorehoi_jax.render.raycast import has_embree
  return "trimesh ray casting (" + ("embree" if has_embree() else "pure Python, slow") + ")"


def render(meshes: Sequence, camera: Camera, *, background=None, backend: str | None = None,
           samples: int = 4, light: Light | None = None, rgb: bool = True) -> RenderOutput:
  """Render meshes given in camera coordinates (OpenCV axes).

  Args:
    meshes: list of ``Mesh``, ``(vertices, faces[, color])`` tuples or
      trimesh objects; colour is [3] or per-vertex [V, 3], in [0, 1] (or
      0..255). The k-th mesh gets instance id k (1-based).
    camera: intrinsics and image size.
    background: None (black), an RGB colour, or an image [H, W, 3]
      (uint8 or float in [0, 1]) composited behind the meshes.
    backend: "gl", "raycast", "auto" or None (environment / auto).
    samples: MSAA samples for the GL colour pass (1 = no anti-aliasing).
    light: a ``Light`` (direction in camera axes, ambient, diffuse,
      specular); None = the default fixed light.
    rgb: False skips shading (GL: the colour pass) when only masks and depth
      are needed, e.g. for visibility tests; the output's rgb is then the
      background alone.

  Returns:
    RenderOutput(rgb uint8 [H, W, 3], instance uint8 [H, W], depth float32 [H, W]).
  """
  check_camera(camera)
  light = check_light(light)
  scene = build_scene(meshes, normals=rgb)
  bg = background_array(background, camera)
  b = resolve_backend(backend, samples)
  if b == "gl":
    from scorehoi_jax.render.gl import get_gl_renderer
    try:
      renderer = get_gl_renderer(samples)
    except Exception as e:
      raise RenderError(f"GL backend requested but no EGL context could be created ({type(e).__name__}: {e}). "
                        f"Install libegl1 libgl1 libgl1-mesa-dri, or use backend='raycast'.") from None
    return renderer.render(scene, camera, bg, light, rgb)
  from scorehoi_jax.render.raycast import render_raycast
  return render_raycast(scene, camera, bg, light, rgb)


__all__ = ["BACKENDS", "Camera", "Light", "Mesh", "RenderError", "RenderOutput", "available_backends", "backend_info",
           "render", "resolve_backend"]
