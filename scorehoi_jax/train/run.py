"""``train_and_evaluate(config, workdir)``: both training stages from a config.

The composition behind ``scorehoi train``: build the networks from the
config's typed sub-dicts, a deterministic, resumable Grain batch stream from a
prepared dataset (data/loader.py: batch k of a run depends only on (seed, k)), the pure
step of the stage (train/steps.py), and hand them to the generic loop
(train/loop.py), which shards, logs, validates, checkpoints and resumes.

Stage 0 pre-trains the point encoder (then frozen: stages 1 and 2 take it
from ``config.point_encoder_checkpoint``, the stage-0 work dir).
Stage 2 needs the stage-1 run's work dir (``config.stage1_workdir``): it
restores the trained HOINet from there and keeps it frozen. A model folder
(``scorehoi export``'s output) serves too: its HOINet and point encoder are
taken, and only a new denoiser is trained (ablations of a shipped model).
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from scorehoi_jax import body as body_lib
from scorehoi_jax.data import loader, mixing, pipeline
from scorehoi_jax.data.tfds_common import data_source
from scorehoi_jax.diffusion.sampler import betas_stats_from_config
from scorehoi_jax.diffusion.schedule import cosine_schedule
from scorehoi_jax.errors import ScoreHOIError
from scorehoi_jax.evaluation.metrics import ContactPRF, align_prediction, contact_from_reconstruction
from scorehoi_jax.geometry.distances import chamfer_distance
from scorehoi_jax.model_store import check_variables, load_model
from scorehoi_jax.models import build as models_build
from scorehoi_jax.models.hoi_net import HOINet, pelvis_centred_body
from scorehoi_jax.models.point_encoder import PointEncoder, pretrain_loss
from scorehoi_jax.train import loop, losses, sharding, steps
from scorehoi_jax.train.checkpoint import Checkpoints


def build_networks(config) -> tuple[HOINet, PointEncoder]:
  nets = models_build.build_networks(config.model)
  return nets.net, nets.point_encoder


def guidance_body(config) -> body_lib.BodyModel:
  model = body_lib.load_body_model(config.get("body_model") or None)
  return body_lib.subset_body_model(model, body_lib.guidance_vertex_indices(model))


def _source(config, split: str):
  if split == "train" and config.data.get("mix"):  # Stage 2 of the paper adds IMHD (data/mixing.py).
    return mixing.mixed_source(config.data.dir, config.data.name, tuple(config.data.mix), split)
  return data_source(config.data.dir, config.data.name, split)


def _adam(config):
  return steps.adam(config.optim.learning_rate, b1=config.optim.b1, eps=config.optim.eps,
                    decay_steps=tuple(config.optim.get("decay_steps", ())))


def resolve_epochs(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """With ``config.epochs > 0``: steps and optim.decay_steps from epochs and the training set's size.

  The paper gives its schedules in epochs (stage 1: 50, ×0.1 after 30; stage 2:
  30); an epoch is ceil(training frames / batch size) steps.
  """
  if not config.get("epochs"):
    return config
  per_epoch = -(-len(_source(config, "train")) // config.batch_size)
  config = config.copy_and_resolve_references()
  config.steps = int(config.epochs * per_epoch)
  config.optim.decay_steps = tuple(int(e * per_epoch) for e in config.optim.get("decay_epochs", ()))
  return config


def _pipeline_config(config, train: bool) -> pipeline.PipelineConfig:
  return pipeline.PipelineConfig(size=config.data.image_size, augment=train and config.data.augment)


def make_batches(config, split: str):
  """The training split as a Grain dataset of host batches (shuffled, augmented, endless, resumable)."""
  return loader.train_batches(_source(config, split), _pipeline_config(config, True), config.batch_size,
                              seed=config.seed, workers=config.data.workers)


def _eval_batches(config, split: str):
  return loader.eval_batches(_source(config, split), _pipeline_config(config, False), config.batch_size,
                             config.eval.num_examples)


def _first_batch(config):
  """Records 0 .. batch_size - 1 of the training split, unaugmented (shapes for initialisation)."""
  return loader.first_batch(_source(config, "train"), _pipeline_config(config, False), config.batch_size)


def _point_cd_cm(pred_h, pred_o, gt_h, gt_o) -> tuple[float, float]:
  """Chamfer (cm) of human and object point sets after one joint similarity Procrustes.

  The field's protocol on the points the network predicts (431 guidance
  vertices, 64 template points) rather than on surface samples of full meshes:
  a cheap validation signal; the evaluator uses the full protocol.
  """
  al_h, al_o = align_prediction(pred_h, pred_o, gt_h, gt_o)
  return tuple(100.0 * float(np.asarray(chamfer_distance(jnp.asarray(a), jnp.asarray(b))))
               for a, b in ((al_h, gt_h), (al_o, gt_o)))


def _mean_metrics(eval_step, state, config, body) -> dict:
  """Loss terms averaged over valid examples, plus the field's metrics (val/cd_*, val/contact_*)."""
  gt_fn = jax.jit(lambda b: pelvis_centred_body(body, b["pose"], b["betas"])[0])
  sums, count = {}, 0.0
  prf = ContactPRF()
  for batch in _eval_batches(config, config.eval.split):
    out, m = eval_step(state, batch)
    valid = np.asarray(batch["valid"]) > 0
    w = float(valid.sum())
    for k, v in m.items():
      sums[k] = sums.get(k, 0.0) + float(v) * w
    count += w
    gt_h = np.asarray(gt_fn(batch))
    gt_o = np.einsum("bkj,bij->bki", batch["object_template"], batch["obj_rot"]) + batch["obj_trans"][:, None]
    for name, (ph, po) in {"": ("human_points", "object_points"),
                           "_refined": ("refined_human_points", "refined_object_points")}.items():
      pred_h, pred_o = np.asarray(out[ph]), np.asarray(out[po])
      for i in np.nonzero(valid)[0]:
        cd_h, cd_o = _point_cd_cm(pred_h[i], pred_o[i], gt_h[i], gt_o[i])
        sums[f"cd_human_cm{name}"] = sums.get(f"cd_human_cm{name}", 0.0) + cd_h
        sums[f"cd_object_cm{name}"] = sums.get(f"cd_object_cm{name}", 0.0) + cd_o
      if not name:
        contact = np.asarray(contact_from_reconstruction(pred_h, pred_o))
        prf.update(contact[valid], np.asarray(batch["human_contact"])[valid] > 0.5)
  res = {k: v / max(count, 1.0) for k, v in sums.items()}
  res.update({f"contact_{k}": v for k, v in prf.result().items() if k in ("precision", "recall", "f1")})
  return res


def _loop_config(config) -> loop.LoopConfig:
  return loop.LoopConfig(total_steps=config.steps, seed=config.seed, log_every=config.log_every,
                         checkpoint_every=config.checkpoint_every, eval_every=config.eval.every,
                         best_metric=config.eval.best_metric or None, progress=config.progress)


# ------------------------------------------------------------------ stage 0
# Pre-training of the affordance-aware point encoder (paper §3.2: frozen after
# this). Labels come from the synthetic frames themselves: the object's
# category and which of its 64 template points the person touches.


class _PointRow:
  """(epoch, index) -> template points and labels of one record (no image decoding); picklable."""

  def __init__(self, source):
    self.source = source

  def __call__(self, epoch_index):
    rec = self.source[epoch_index[1]]
    return {"points": np.asarray(rec["object_template"], np.float32), "category": np.int32(rec["object_id"]),
            "affordance": np.asarray(rec["object_contact"], np.float32)}


def _point_batches(config, split: str, train: bool):
  """Light batches of template points and labels: the same Grain order as the image batches."""
  src = _source(config, split)
  stream = loader.positions(len(src), config.seed, shuffle=train).map(_PointRow(src))
  share = () if train else (0, 1)  # Validation: every process evaluates the same whole batches.
  return loader.iterable(loader.host_batches(stream, config.batch_size, *share))


def _augment_points(points, rng):
  """Random yaw, scale and jitter: objects appear in any heading and size."""
  k1, k2, k3 = jax.random.split(rng, 3)
  b = points.shape[0]
  yaw = jax.random.uniform(k1, (b,), minval=-np.pi, maxval=np.pi)
  c, s = jnp.cos(yaw), jnp.sin(yaw)
  zero, one = jnp.zeros_like(c), jnp.ones_like(c)
  rot = jnp.stack([jnp.stack([c, zero, s], -1), jnp.stack([zero, one, zero], -1),
                   jnp.stack([-s, zero, c], -1)], -2)
  scale = jax.random.uniform(k2, (b, 1, 1), minval=0.85, maxval=1.15)
  jitter = 0.005 * jax.random.normal(k3, points.shape)
  return jnp.einsum("bij,bnj->bni", rot, points) * scale + jitter


def _pretrain_parts(config):
  _, enc = build_networks(config)
  tx = _adam(config)

  @jax.jit  # One program, not one compile per operation of an eager Flax init.
  def init_points(rng, points):
    params = enc.init(rng, points)["params"]
    return {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}

  def init(rng, batch):
    return init_points(rng, jnp.asarray(batch["points"]))

  def loss(params, batch, points):
    return pretrain_loss(params, points, batch["category"], batch["affordance"], encoder=enc)

  def train_step(state, batch, rng):
    points = _augment_points(batch["points"], rng)
    (l, metrics), grads = jax.value_and_grad(loss, has_aux=True)(state["params"], batch, points)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    return ({"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state,
             "step": state["step"] + 1}, dict(metrics, loss=l))

  eval_loss = jax.jit(lambda params, batch: loss(params, batch, batch["points"])[1])
  return enc, init, train_step, eval_loss


def train_point_encoder(config, workdir: str):
  _, init, train_step, eval_loss = _pretrain_parts(config)
  batch0 = next(iter(_point_batches(config, "train", False)))

  def eval_fn(state):
    n = len(_source(config, config.eval.split))
    batches = iter(_point_batches(config, config.eval.split, False))
    ms = [eval_loss(state["params"], next(batches)) for _ in range(max(1, -(-min(n, config.eval.num_examples)
                                                                            // config.batch_size)))]
    return {k: float(np.mean([m[k] for m in ms])) for k in ms[0]}

  return loop.run(workdir, _loop_config(config), init_state=lambda rng: init(rng, batch0),
                  train_step=train_step, batches=_point_batches(config, "train", True), eval_fn=eval_fn,
                  meta={"config": config.to_dict(), "stage": 0})


def _encoder_variables(config, encoder, batch):
  """The pre-trained point encoder from ``config.point_encoder_checkpoint`` (a stage-0 work dir)."""
  path = config.get("point_encoder_checkpoint") or ""
  if not path:
    return None  # Randomly initialised, frozen: fine for smoke runs; results must say so.
  _, init, _, _ = _pretrain_parts(config)
  target = init(jax.random.key(0), {"points": np.asarray(batch["object_template"])})
  state, _ = Checkpoints(os.path.join(path, "checkpoints")).restore(target)
  return {"params": state["params"]}


def train_stage1(config, workdir: str):
  net, enc = build_networks(config)
  sub = guidance_body(config)
  tx = _adam(config)
  weights = losses.Stage1Weights(**dict(config.get("loss", {})))
  setup = steps.Stage1Setup(net, enc, tx, sub, losses.knn_edges(np.asarray(sub.v_template)), weights)
  batch0 = _first_batch(config)
  enc_vars = _encoder_variables(config, enc, batch0)
  eval_step = jax.jit(steps.make_stage1_eval(setup))
  metrics_fn = lambda st: _mean_metrics(eval_step, st, config, sub)
  return loop.run(workdir, _loop_config(config),
                  init_state=lambda rng: steps.stage1_init(setup, rng, batch0, enc_vars),
                  train_step=steps.make_stage1_step(setup), batches=make_batches(config, "train"),
                  eval_fn=metrics_fn,
                  meta={"config": config.to_dict(), "stage": 1})


def restore_stage1(config, setup1_net, enc, batch0):
  """The trained stage-1 state from ``config.stage1_workdir`` (best if kept, else newest)."""
  src = config.get("stage1_workdir") or ""
  if not src:
    raise ScoreHOIError("stage 2 needs --config.stage1_workdir=<the stage-1 run's work dir>.")
  sub = guidance_body(config)
  setup = steps.Stage1Setup(setup1_net, enc, steps.adam(1e-4), sub, losses.knn_edges(np.asarray(sub.v_template)))
  target = steps.stage1_init(setup, jax.random.key(0), batch0, None)
  ck = Checkpoints(os.path.join(src, "checkpoints"),
                   best_metric=config.get("stage1_best_metric") or None)
  state, _ = ck.restore(target, best=bool(config.get("stage1_best_metric")))
  return state


def frozen_from_model(config, net, enc, batch0) -> tuple[dict, dict]:
  """Stage 2's frozen (HOINet, point encoder) variables from ``config.stage1_workdir`` when it is a
  model folder (``scorehoi export``'s output, the shipped model included) rather than a stage-1 run.

  This retrains only the denoiser of a model whose training runs are gone: Table 3's "w/o c_I" and
  "w/o c_G" rows are such retrains of the shipped model. The exported weights are bfloat16-rounded, as
  at inference. A folder whose networks do not have the config's shapes is refused, naming the first
  differing weight. The folder's calibrated contact thresholds (evaluation/calibration.py) belong to its
  ContactFormer, which stays as it is, so they are carried into the run's config and the model it exports.
  """
  model = load_model(config.stage1_workdir)
  setup = steps.Stage1Setup(net, enc, steps.adam(1e-4), guidance_body(config), None)
  want = jax.eval_shape(lambda: steps.stage1_init(setup, jax.random.key(0), batch0, None))
  net_vars = model.variables.get("net", {})
  check_variables({"net": {"params": want.params, "batch_stats": want.batch_stats}}, {"net": net_vars}, model.path)
  if model.config.get("contact_thresholds"):
    with config.unlocked():
      config.contact_thresholds = dict(model.config.contact_thresholds)
  return {"params": net_vars["params"], "batch_stats": net_vars["batch_stats"]}, model.variables["point_encoder"]


def train_stage2(config, workdir: str):
  net, enc = build_networks(config)
  batch0 = _first_batch(config)
  if os.path.isfile(os.path.join(config.get("stage1_workdir") or "", "model.json")):
    stage1_vars, encoder_vars = frozen_from_model(config, net, enc, batch0)
  else:
    s1 = restore_stage1(config, net, enc, batch0)
    stage1_vars, encoder_vars = {"params": s1.params, "batch_stats": s1.batch_stats}, s1.frozen
  den = models_build.build_networks(config.model).denoiser
  tx = _adam(config)
  setup = steps.Stage2Setup(den, net, enc, tx, cosine_schedule(), betas_stats=betas_stats_from_config(config),
                            ema_decay=config.optim.ema_decay, image_cond=config.model.image_cond)
  return loop.run(workdir, _loop_config(config),
                  init_state=lambda rng: steps.stage2_init(setup, rng, batch0, stage1_vars, encoder_vars),
                  train_step=steps.make_stage2_step(setup), batches=make_batches(config, "train"),
                  meta={"config": config.to_dict(), "stage": 2})


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Run the configured stage in ``workdir`` (resuming if it has checkpoints).

  A second run on the same ``workdir`` is refused while this one lives (locks.py).
  """
  sharding.maybe_initialize_distributed()  # Before any JAX computation; a no-op on one host.
  from scorehoi_jax.locks import folder_lock
  with folder_lock(workdir, "scorehoi train"):
    return _train_and_evaluate(resolve_epochs(config), workdir)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config.to_dict(), f, indent=1, default=str)
  if config.stage == 0:
    state, records = train_point_encoder(config, workdir)
  elif config.stage == 1:
    state, records = train_stage1(config, workdir)
  elif config.stage == 2:
    state, records = train_stage2(config, workdir)
  else:
    raise ScoreHOIError(f"config.stage must be 0 (point encoder), 1 or 2, got {config.stage}.")
  loop.plot_metrics(workdir, os.path.join(workdir, "curves.png"))
  return state, records
