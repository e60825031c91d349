"""The diffusion noise schedule ᾱ_t (paper §3.1; notes/official-code-notes.md §2.1).

The released code builds a cosine schedule (Nichol & Dhariwal) with T = 1000
and s = 0.008 in float64, turns it into per-step β_t clipped to [0, 0.999], and
stores ᾱ_t = Π_{s≤t}(1 − β_s) as float32. So ᾱ_0 = 1 − β_0 ≈ 0.999959, not 1:
the last DDIM step (t → 0) lands on ᾱ_0, which we keep for parity.
"""

from __future__ import annotations

import numpy as np


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
  """ᾱ_t for t = 0 … T−1 as a float32 NumPy array [T].

  Args:
    T: number of diffusion steps.
    s: the cosine schedule's offset (keeps β_0 from being vanishingly small).
    max_beta: β_t is clipped to [0, max_beta] (prevents a singular last step).

  Returns:
    alphas_cumprod [T], float32, strictly decreasing from ≈1.
  """
  if T < 2:
    raise ValueError(f"cosine_schedule: T must be >= 2, got {T}.")
  i = np.arange(T + 1, dtype=np.float64)
  f = np.cos(((i / T) + s) / (1.0 + s) * np.pi / 2.0) ** 2
  f = f / f[0]
  betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, max_beta)
  return np.cumprod(1.0 - betas).astype(np.float32)


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2) -> np.ndarray:
  """DDPM's linear β schedule as ᾱ_t [T] float32 (the released code's unused option)."""
  betas = np.linspace(beta_start, beta_end, T, dtype=np.float64)
  return np.cumprod(1.0 - betas).astype(np.float32)
