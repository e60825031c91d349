"""The image backbone: a ResNet-18/34/50 on RGB + human mask + object mask (notes §6.2).

Input [B, S, S, 5] (NHWC; RGB in [0, 1] without mean/std normalisation, as
released), output the stride-32 feature map F [B, S/32, S/32, C] — 8×8 at
S = 256, with C = 512 (18/34) or 2048 (50) at the standard width 64.

The object geometry feature is injected as in the released regressor
(``PoseResNetObj``): a Dense projection of the affordance-aware point encoder's
global feature is added as a per-channel bias right after the 7×7 stem
convolution, before its BatchNorm. Unlike the released code (a lookup table of
one pre-computed feature per known object category), the feature is computed
from the object's template points, so any user mesh gets one.

BatchNorm follows PyTorch's defaults (momentum 0.1 → Flax momentum 0.9,
ε = 1e-5); ``train=False`` uses the running averages. The last BatchNorm of
every residual branch starts at zero scale (Goyal et al. 2017) so each block
starts as the identity: it trains from scratch more stably than the standard
init, which matters since we have no ImageNet/Hand4Whole weights to start from.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

# Blocks per stage and the block kind of each depth (He et al. 2016, Table 1).
STAGES = {18: ((2, 2, 2, 2), "basic"), 34: ((3, 4, 6, 3), "basic"), 50: ((3, 4, 6, 3), "bottleneck")}

_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")  # Kaiming, as torchvision.


class BasicBlock(nn.Module):
  """Two 3×3 convolutions with a residual (ResNet-18/34)."""
  features: int
  strides: int = 1
  norm: functools.partial = nn.BatchNorm

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(nn.Conv, use_bias=False, kernel_init=_conv_init)
    y = conv(self.features, (3, 3), (self.strides, self.strides), padding=((1, 1), (1, 1)), name="conv1")(x)
    y = nn.relu(self.norm(name="bn1")(y))
    y = conv(self.features, (3, 3), padding=((1, 1), (1, 1)), name="conv2")(y)
    y = self.norm(name="bn2", scale_init=nn.initializers.zeros)(y)
    if x.shape[-1] != self.features or self.strides != 1:
      x = conv(self.features, (1, 1), (self.strides, self.strides), name="downsample_conv")(x)
      x = self.norm(name="downsample_bn")(x)
    return nn.relu(x + y)


class Bottleneck(nn.Module):
  """1×1 reduce, 3×3 (strided, as torchvision v1.5), 1×1 expand ×4 (ResNet-50)."""
  features: int
  strides: int = 1
  norm: functools.partial = nn.BatchNorm

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(nn.Conv, use_bias=False, kernel_init=_conv_init)
    y = nn.relu(self.norm(name="bn1")(conv(self.features, (1, 1), name="conv1")(x)))
    y = conv(self.features, (3, 3), (self.strides, self.strides), padding=((1, 1), (1, 1)), name="conv2")(y)
    y = nn.relu(self.norm(name="bn2")(y))
    y = conv(self.features * 4, (1, 1), name="conv3")(y)
    y = self.norm(name="bn3", scale_init=nn.initializers.zeros)(y)
    if x.shape[-1] != self.features * 4 or self.strides != 1:
      x = conv(self.features * 4, (1, 1), (self.strides, self.strides), name="downsample_conv")(x)
      x = self.norm(name="downsample_bn")(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """ResNet backbone with a 5-channel stem and an object-geometry bias.

  Attributes:
    depth: 18, 34 or 50.
    width: channels of the stem and first stage (64 standard; small for tests).
    stages: optional override of blocks per stage (tiny configs), e.g. (1, 1, 1, 1);
      fewer than four stages gives a finer output stride (tests).
  """
  depth: int = 50
  width: int = 64
  stages: Sequence[int] | None = None

  @property
  def out_channels(self) -> int:
    counts, kind = STAGES[self.depth]
    n = len(self.stages) if self.stages is not None else len(counts)
    return self.width * 2 ** (n - 1) * (4 if kind == "bottleneck" else 1)

  @property
  def stride(self) -> int:
    """Output stride: 4 (stem + pool) × 2 per stage after the first (32 for four stages)."""
    n = len(self.stages) if self.stages is not None else len(STAGES[self.depth][0])
    return 4 * 2 ** (n - 1)

  @nn.compact
  def __call__(self, images: jnp.ndarray, geo_feat: jnp.ndarray | None = None, train: bool = False):
    """images [B, S, S, C_in]; geo_feat [B, G] or None -> feature map [B, S/32, S/32, C]."""
    if self.depth not in STAGES:
      raise ValueError(f"ResNet: depth must be one of {sorted(STAGES)}, got {self.depth}.")
    if images.ndim != 4:
      raise ValueError(f"ResNet: images must be [B, H, W, C], got shape {images.shape}.")
    counts, kind = STAGES[self.depth]
    counts = tuple(self.stages) if self.stages is not None else counts
    block = BasicBlock if kind == "basic" else Bottleneck
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5)

    x = nn.Conv(self.width, (7, 7), (2, 2), padding=((3, 3), (3, 3)), use_bias=False, kernel_init=_conv_init,
                name="stem_conv")(images)
    if geo_feat is not None:
      # Released obj_linear: the object feature as a per-channel bias of the stem, before BN.
      # No Dense bias: a constant per-channel offset is removed by the BatchNorm anyway (its
      # gradient would be pure rounding noise, which Adam would amplify to full steps).
      x = x + nn.Dense(self.width, use_bias=False, name="geo_bias")(geo_feat)[:, None, None, :]
    x = nn.relu(norm(name="stem_bn")(x))
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    for s, n in enumerate(counts):
      for b in range(n):
        strides = 2 if (s > 0 and b == 0) else 1
        x = block(self.width * 2**s, strides, norm, name=f"stage{s + 1}_block{b}")(x)
    return x
