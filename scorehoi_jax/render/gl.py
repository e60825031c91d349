"""Primary backend: OpenGL 3.3 through moderngl on a headless EGL context.

On CPU machines EGL gives Mesa's llvmpipe, on NVIDIA machines the driver's
EGL (notes/renderer.md §3.5: 52 fps at 256² with 4x MSAA on 2 cores; masks
and depth match ray casting exactly). Two passes per frame:
1. single-sample MRT pass writing (instance id, view z) to a float texture,
   so masks and depth are exact at pixel centres;
2. a multisampled colour pass (premultiplied RGBA), resolved into a
   single-sample target; alpha = coverage, used to composite the background.
   It shades with core.py's ``Light`` model (uniforms set per call) and is
   skipped for mask/depth-only renders (``render(..., rgb=False)``).

The vertex shader maps OpenCV camera coordinates straight to clip space,
including the +0.5 px between OpenCV pixel centres (integer) and GL's
(half-integer), and without a y flip, so ``fbo.read()`` rows are image rows.
Contexts are per thread (an EGL context is current on one thread).
"""

from __future__ import annotations

import os
import threading

import numpy as np

from scorehoi_jax.render.core import DEFAULT_LIGHT, Camera, Light, RenderOutput, Scene

_VERTEX = """
#version 330
uniform vec4 intr;   // fx, fy, cx + 0.5, cy + 0.5
uniform vec2 size;   // W, H
uniform vec2 clip;   // near, far
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in float in_id;
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_color;
out float v_z;
flat out float v_id;
void main() {
  float z = in_pos.z;
  // x_ndc = 2 (fx X/Z + cx + 0.5) / W - 1, multiplied by w = Z (perspective-correct).
  float xc = 2.0 * (intr.x * in_pos.x + intr.z * z) / size.x - z;
  float yc = 2.0 * (intr.y * in_pos.y + intr.w * z) / size.y - z;
  float n = clip.x, f = clip.y;
  float zc = (f + n) / (f - n) * z - 2.0 * f * n / (f - n);
  gl_Position = vec4(xc, yc, zc, z);
  v_pos = in_pos;
  v_normal = in_normal;
  v_color = in_color;
  v_z = z;
  v_id = in_id;
}
"""

_FRAG_AUX = """
#version 330
in vec3 v_normal;
in vec3 v_color;
in float v_z;
flat in float v_id;
out vec4 aux;
void main() { aux = vec4(v_id, v_z, 0.0, 1.0); }
"""

_FRAG_COLOR = """
#version 330
// The Light model of core.py (same formula as core.shade, which tests compare against).
uniform vec3 light_dir;  // Unit, from the scene towards the light.
uniform vec4 light;      // ambient, diffuse, specular, shininess
uniform float symmetric; // 1: |n.l| (lit from both sides), 0: max(n.l, 0)
in vec3 v_pos;
in vec3 v_normal;
in vec3 v_color;
out vec4 color;
void main() {
  // normalize() of a zero vector is undefined in GLSL; core.shade maps it to 0.
  float len = length(v_normal);
  vec3 n = len > 1e-12 ? v_normal / len : vec3(0.0);
  vec3 v = normalize(-v_pos);
  if (dot(n, v) < 0.0) n = -n;  // Two-sided: turn the normal towards the viewer.
  float nl = dot(n, light_dir);
  float lam = symmetric > 0.5 ? abs(nl) : max(nl, 0.0);
  vec3 c = v_color * (light.x + light.y * lam);
  if (light.z > 0.0) {
    vec3 h = normalize(light_dir + v);
    c += light.z * pow(max(dot(n, h), 0.0), light.w);
  }
  color = vec4(clamp(c, 0.0, 1.0), 1.0);
}
"""

_LOCAL = threading.local()
_MAX_TARGETS = 4  # Framebuffer sets kept per renderer (one per image size).


class GLRenderer:
  """One EGL context with cached framebuffers per image size."""

  def __init__(self, samples: int = 4):
    import moderngl  # Deferred: the fallback must work where moderngl is absent.

    kwargs = {"standalone": True, "backend": "egl"}
    if "SCOREHOI_EGL_DEVICE" in os.environ:  # Pick the NVIDIA device on mixed Mesa/NVIDIA boxes.
      kwargs["device_index"] = int(os.environ["SCOREHOI_EGL_DEVICE"])
    self.ctx = moderngl.create_context(**kwargs)
    self.samples = min(int(samples), self.ctx.max_samples) if samples > 1 else 0
    self.prog_aux = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAG_AUX)
    self.prog_color = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAG_COLOR)
    self._fbos: dict = {}

  @property
  def info(self) -> str:
    return f"moderngl/EGL ({self.ctx.info['GL_RENDERER']})"

  def _targets(self, w: int, h: int):
    key = (w, h)
    if key not in self._fbos:
      if len(self._fbos) >= _MAX_TARGETS:  # Many image sizes (user images): drop the oldest targets.
        aux, ms, resolved = self._fbos.pop(next(iter(self._fbos)))
        for fbo in {id(f): f for f in (aux, ms, resolved)}.values():
          for att in list(fbo.color_attachments) + [fbo.depth_attachment]:
            if att is not None:
              att.release()
          fbo.release()
      ctx = self.ctx
      aux = ctx.framebuffer(color_attachments=[ctx.texture((w, h), 4, dtype="f4")],
                            depth_attachment=ctx.depth_renderbuffer((w, h)))
      if self.samples:
        ms = ctx.framebuffer(color_attachments=[ctx.renderbuffer((w, h), 4, samples=self.samples)],
                             depth_attachment=ctx.depth_renderbuffer((w, h), samples=self.samples))
        resolved = ctx.framebuffer(color_attachments=[ctx.renderbuffer((w, h), 4)])
      else:
        ms = ctx.framebuffer(color_attachments=[ctx.renderbuffer((w, h), 4)],
                             depth_attachment=ctx.depth_renderbuffer((w, h)))
        resolved = ms
      self._fbos[key] = (aux, ms, resolved)
    return self._fbos[key]

  def render(self, scene: Scene, camera: Camera, background: np.ndarray,
             light: Light = DEFAULT_LIGHT, shading: bool = True) -> RenderOutput:
    # A thread may hold several renderers (one per sample count), each with its own EGL
    # context, and only the most recently created one is current: make ours current for
    # the call (and restore the previous one after), or GL calls go to the wrong context.
    with self.ctx:
      return self._render(scene, camera, background, light, shading)

  def _render(self, scene: Scene, camera: Camera, background: np.ndarray, light: Light,
              shading: bool) -> RenderOutput:
    import moderngl

    w, h = camera.width, camera.height
    aux, ms, resolved = self._targets(w, h)
    for prog in (self.prog_aux, self.prog_color):
      prog["intr"].value = (float(camera.focal[0]), float(camera.focal[1]),
                            float(camera.princpt[0]) + 0.5, float(camera.princpt[1]) + 0.5)
      prog["size"].value = (float(w), float(h))
      prog["clip"].value = (float(camera.near), float(camera.far))
    # Uniforms keep their values between calls; set all of them, every call.
    self.prog_color["light_dir"].value = light.direction
    self.prog_color["light"].value = (light.ambient, light.diffuse, light.specular, light.shininess)
    self.prog_color["symmetric"].value = 1.0 if light.symmetric else 0.0
    ctx = self.ctx
    ctx.enable(moderngl.DEPTH_TEST)
    ctx.disable(moderngl.CULL_FACE)
    rgba = np.zeros((h, w, 4), np.float32)
    aux_img = np.zeros((h, w, 4), np.float32)
    if len(scene.faces):
      data = np.concatenate([scene.vertices, scene.normals, scene.colors, scene.ids[:, None]], 1)
      vbo = ctx.buffer(np.ascontiguousarray(data, np.float32).tobytes())
      ibo = ctx.buffer(np.ascontiguousarray(scene.faces, np.int32).tobytes())
      try:
        # Attributes a program does not use are optimised away by the GLSL
        # compiler, so each program binds only the ones it reads (rest = padding).
        vao_aux = ctx.vertex_array(self.prog_aux, [(vbo, "3f 24x 1f", "in_pos", "in_id")], ibo)
        vao_col = ctx.vertex_array(self.prog_color, [(vbo, "3f 3f 3f 4x", "in_pos", "in_normal", "in_color")], ibo)
        aux.use()
        aux.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        vao_aux.render(moderngl.TRIANGLES)
        aux_img = np.frombuffer(aux.read(components=4, dtype="f4"), np.float32).reshape(h, w, 4)
        if shading:  # Without it, rgba stays 0: the output is the background.
          ms.use()
          ms.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
          vao_col.render(moderngl.TRIANGLES)
          if ms is not resolved:
            ctx.copy_framebuffer(resolved, ms)
          rgba = np.frombuffer(resolved.read(components=4, dtype="f1"), np.uint8).reshape(h, w, 4)
          rgba = rgba.astype(np.float32) / 255.0
        vao_aux.release()
        vao_col.release()
      finally:
        vbo.release()
        ibo.release()
    instance = np.rint(aux_img[..., 0]).astype(np.uint8)
    depth = np.where(instance > 0, aux_img[..., 1], 0.0).astype(np.float32)
    # Resolved colour is coverage-weighted (premultiplied); composite over the background.
    out = rgba[..., :3] + background * (1.0 - rgba[..., 3:4])
    rgb = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    return RenderOutput(rgb, instance, depth)


def get_gl_renderer(samples: int = 4) -> GLRenderer:
  """The calling thread's renderer (created on first use)."""
  cache = getattr(_LOCAL, "renderers", None)
  if cache is None:
    cache = _LOCAL.renderers = {}
  if samples not in cache:
    cache[samples] = GLRenderer(samples)
  return cache[samples]
