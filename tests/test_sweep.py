"""`scorehoi sweep` end to end on a tiny model and synthetic frames: one compile, resume, report, errors."""

import json
import os
import sys

import numpy as np
import pytest

from scorehoi_jax import cli
from scorehoi_jax.config import load_config
from scorehoi_jax.evaluation import evaluator
from scorehoi_jax.model_store import load_model
from scorehoi_jax.data.synthetic_hoi import prepare_synthetic
from scorehoi_jax.sweep import pareto_mask, summarize

sys.path.insert(0, os.path.dirname(__file__))
from tiny_model import write_tiny_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("fast_compile")

RUNLOCAL = "refine_paper:runlocal"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
  data = str(tmp_path_factory.mktemp("sweepdata"))
  prepare_synthetic(data, num=6, seed=3, resolution=64, workers=1, test_fraction=0.99, progress=False)
  return data, write_tiny_model(str(tmp_path_factory.mktemp("model")))


def _sweep(data, model, out, *extra):
  return cli.main(["sweep", "--config", RUNLOCAL, "--checkpoint", model, "--data", data, "--limit", "5",
                   "--batch", "4", "--samples", "300", "--resamples", "200", "--quiet", "--out", out,
                   "--grid", "guidance.rho=0.5,1,2", "--grid", "guidance.lambda_pt=1,5,20", *extra])


def test_sweep_compiles_once_resumes_and_reports(dirs, tmp_path, capsys):
  data, model = dirs
  out = str(tmp_path / "sweep")
  assert _sweep(data, model, out) == 0
  summary = json.load(open(os.path.join(out, "sweep.json")))
  assert summary["compiles"] == 1 and summary["static_structures"] == 1 and len(summary["ran"]) == 9
  for f in ("sweep.md", "pareto.png", "curves.png", "spec.json"):
    assert os.path.getsize(os.path.join(out, f)) > 0
  pts = {n: json.load(open(os.path.join(out, "points", n + ".json"))) for n in summary["ran"]}
  first, last = pts["rho=0.5_lambda_pt=1"], pts["rho=2_lambda_pt=20"]
  assert len(first["frames"]["cd_human"]) == 5  # --limit 5 over batches of 4: the padding row is not scored.
  assert first["regressor_frames"] == last["regressor_frames"]  # The same start for every point.
  assert first["frames"]["cd_human"] != last["frames"]["cd_human"]  # The weights reach the refinement.
  # Curves: every loss term plus the update sizes, over R·S = 2 rounds × 2 steps (runlocal).
  assert set(first["curves"]) >= {"total", "ho", "of", "pt", "prior_step", "guidance_step"}
  assert all(len(v) == 4 for v in first["curves"].values())
  s = summary["points"]["rho=1_lambda_pt=5"]["cd_human"]
  assert s["lo"] <= s["mean"] <= s["hi"]
  np.testing.assert_allclose(s["mean"], np.mean(pts["rho=1_lambda_pt=5"]["frames"]["cd_human"]), rtol=1e-9)
  assert len(open(os.path.join(out, "sweep.md")).read().splitlines()) >= 4 + 10
  # Resume: only the missing point runs, under one new compile.
  os.remove(os.path.join(out, "points", "rho=2_lambda_pt=5.json"))
  capsys.readouterr()
  assert _sweep(data, model, out) == 0
  summary = json.load(open(os.path.join(out, "sweep.json")))
  assert summary["ran"] == ["rho=2_lambda_pt=5"] and len(summary["skipped"]) == 8 and summary["compiles"] == 1
  assert "1 points run, 8 already done" in capsys.readouterr().out
  # Another spec in the same folder is refused; so is an unknown field. One line, exit 2.
  assert cli.main(["sweep", "--config", RUNLOCAL, "--checkpoint", model, "--data", data, "--limit", "3",
                   "--out", out, "--grid", "guidance.rho=1", "--quiet"]) == 2
  assert "limit" in capsys.readouterr().err
  assert cli.main(["sweep", "--config", RUNLOCAL, "--checkpoint", model, "--data", data, "--out",
                   str(tmp_path / "x"), "--grid", "guidance.rhoo=1", "--quiet"]) == 2
  err = capsys.readouterr().err
  assert "guidance.rhoo" in err and "Traceback" not in err
  # Later points skip the regressor's and the GT's searches (copied from the first point): a point's values
  # are still those of evaluate() at its weights, the contacts included (they are measured against the GT's).
  cfg = load_config(RUNLOCAL)
  cfg.guidance.rho, cfg.guidance.lambda_pt = 1.0, 5.0
  ev = evaluator.evaluate(load_model(model), data, "test", ["full"], limit=5, batch_size=4, refine_config=cfg,
                          num_samples=300, progress=False, per_frame=True, score_rounds=False)["methods"]["full"]
  for key, stage in (("frames", "refined"), ("regressor_frames", "regressor")):
    for k in ("cd_human", "cd_object", "precision", "recall"):
      np.testing.assert_allclose(pts["rho=1_lambda_pt=5"][key][k], ev["frames"][stage][k], rtol=1e-5, atol=1e-6,
                                 err_msg=f"{stage} {k}")


def test_bootstrap_interval_and_pareto_against_closed_forms():
  rng = np.random.default_rng(1)
  n = 400
  x = rng.normal(3.0, 2.0, size=n)
  frames = {k: x for k in ("cd_human", "cd_object", "fscore_human", "fscore_object", "pen_depth_cm", "pen_frac")}
  p, r = rng.uniform(size=n), rng.uniform(size=n)
  frames.update(precision=p, recall=r, valid_p=np.ones(n, bool), valid_r=rng.uniform(size=n) > 0.2)
  s = summarize(frames, resamples=2000, seed=0)
  half = 1.96 * x.std() / np.sqrt(n)  # Normal-theory 95 % half width of a mean.
  assert abs((s["cd_human"]["hi"] - s["cd_human"]["lo"]) / (2 * half) - 1) < 0.1
  assert abs(s["cd_human"]["mean"] - x.mean()) < 1e-12
  pm, rm = p.mean(), r[frames["valid_r"]].mean()
  np.testing.assert_allclose(s["contact_f1"]["mean"], 2 * pm * rm / (pm + rm), rtol=1e-12)
  # Pareto: (CD ↓, F1 ↑, pen ↓); point 2 is beaten by point 0 on all three, point 3 ties point 0 but is worse on pen.
  cd, f1, pen = [1.0, 2.0, 1.5, 1.0], [0.5, 0.9, 0.4, 0.5], [0.3, 0.1, 0.4, 0.35]
  np.testing.assert_array_equal(pareto_mask(cd, f1, pen), [True, True, False, False])
