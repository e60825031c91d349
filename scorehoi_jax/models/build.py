"""Networks from a training config's ``model`` section (the one place sizes are read).

Training (train/run.py) and inference (reconstruct.py, model_store.py) build
the same modules from the same config, so a checkpoint written by one loads
in the other.
"""

from __future__ import annotations

from typing import NamedTuple

from scorehoi_jax.models.contact_former import ContactFormer
from scorehoi_jax.models.denoiser import Denoiser
from scorehoi_jax.models.hoi_net import HOINet
from scorehoi_jax.models.mesh_refiner import MeshRefiner
from scorehoi_jax.models.point_encoder import PointEncoder
from scorehoi_jax.models.regressor import Regressor
from scorehoi_jax.models.resnet import ResNet


class Networks(NamedTuple):
  net: HOINet  # Stage 1: backbone, regressor, ContactFormer, CRFormer.
  point_encoder: PointEncoder  # Stage 0, frozen afterwards.
  denoiser: Denoiser  # Stage 2.


def _kw(section) -> dict:
  return {k: (tuple(v) if isinstance(v, list) else v) for k, v in dict(section).items()}


def build_networks(model_config) -> Networks:
  """model_config: a training config's ``model`` section (resnet, regressor, … sub-dicts)."""
  m = model_config
  net = HOINet(ResNet(**_kw(m.resnet)), Regressor(**_kw(m.regressor)), ContactFormer(**_kw(m.contact_former)),
               MeshRefiner(**_kw(m.mesh_refiner)))
  return Networks(net, PointEncoder(**_kw(m.point_encoder)), Denoiser(**_kw(m.denoiser)))
