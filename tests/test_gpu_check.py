"""experiments/gpu_check.sh end to end on the CPU at tiny sizes, so the GPU script cannot rot."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_DENOISER = " ".join(f"--config.denoiser.{k}={v}" for k, v in dict(
    model_dim=32, hidden_dim=64, num_blocks=1, token_dim=16, attn_dim=16, num_heads=2).items())


def test_gpu_check_runs_at_tiny_sizes_on_cpu(tmp_path):
  out = tmp_path / "results"
  # The subprocesses skip XLA's slow optimisation passes, like the fast_compile fixture.
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="true",
             GPU_CHECK_SKIP_INSTALL="1", GPU_CHECK_OUT=str(out),
             GPU_CHECK_PYTHON=sys.executable, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             GPU_CHECK_WORKERS="1", GPU_CHECK_FRAMES="3", GPU_CHECK_RESOLUTION="64", GPU_CHECK_REFINE_BATCHES="2",
             GPU_CHECK_REFINE_ARGS=f"--rounds 1 --repeats 1 --img-tokens 4 --img-dim 16 --geo-dim 16 {TINY_DENOISER}",
             GPU_CHECK_TRAIN_SIZES="tiny", GPU_CHECK_TRAIN_BATCH="2,2", GPU_CHECK_TRAIN_STEPS="2",
             GPU_CHECK_EVAL_FRAMES="2", GPU_CHECK_EVAL_BATCH="2", GPU_CHECK_EVAL_METHODS="regressor",
             GPU_CHECK_EVAL_ARGS="--samples 100", GPU_CHECK_LIMITS="600,600,600,600")
  r = subprocess.run(["bash", os.path.join(ROOT, "experiments", "gpu_check.sh")], env=env, capture_output=True,
                     text=True, timeout=1200, cwd=str(tmp_path))
  assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
  summary = r.stdout[r.stdout.index("==== gpu_check summary"):]
  for step in ("data", "refine", "training", "evaluation"):
    assert f"{step}: ok in" in summary
  refine = (out / "refine_gpu.md").read_text()
  assert "| paper | 1 | 2 | 2 |" in refine  # Setting, N, Δt, batch: the sizes asked for.
  training = (out / "training_gpu.md").read_text()
  rows = [l for l in training.splitlines() if l.startswith(("| tiny | 1 |", "| tiny | 2 |"))]
  assert len(rows) == 2 and all("–" not in l for l in rows)  # Both stages, with the input pipeline measured.
  evaluation = (out / "evaluation_gpu.md").read_text()
  assert "| regressor |" in evaluation
