"""Data parallelism over every device with jit + explicit shardings.

One mesh with a single ``data`` axis spans all devices (of all hosts). The
train state is replicated; batches are split along their leading dimension.
The same code runs on one CPU, N fake CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``) and N GPUs.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from scorehoi_jax.errors import ScoreHOIError


def maybe_initialize_distributed():
  """Multi-host: join the cluster when the launcher says so (no-op otherwise).

  SLURM (and the other launchers jax.distributed detects) need nothing more;
  elsewhere set JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and
  JAX_PROCESS_ID on every host. Must run before any JAX computation, so it
  asks jax.distributed, not jax.process_count() (which starts the backend).
  """
  if jax.distributed.is_initialized():
    return
  env = os.environ
  if env.get("JAX_COORDINATOR_ADDRESS"):
    count, index = env.get("JAX_NUM_PROCESSES"), env.get("JAX_PROCESS_ID")
    jax.distributed.initialize(num_processes=int(count) if count else None, process_id=int(index) if index else None)
  elif int(env.get("SLURM_NTASKS", "1")) > 1:
    jax.distributed.initialize()


def make_mesh(devices=None) -> Mesh:
  devices = np.asarray(devices if devices is not None else jax.devices())
  return Mesh(devices.reshape(-1), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def check_batch_size(global_batch: int, mesh: Mesh):
  n = mesh.devices.size
  if global_batch % n:
    raise ScoreHOIError(f"batch size {global_batch} is not divisible by the {n} devices of the mesh; "
                        f"use a multiple of {n}.")


def shard_batch(batch, mesh: Mesh):
  """Host-local numpy batch -> global arrays split over the ``data`` axis."""
  sharding = data_sharded(mesh)
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, replicated(mesh))
