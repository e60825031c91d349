# Writes tests/data/refine_reference.npz: refine outputs recorded BEFORE the traces/schedules change (issue 13),
# so the default path can be checked unchanged. Run: PYTHONPATH=$PWD python tests/data/record_refine_reference.py tests/data/refine_reference.npz
import sys, jax, numpy as np
jax.config.update("jax_disable_most_optimizations", True)
sys.path.insert(0, "tests")
import small_refine as S
from scorehoi_jax.diffusion import RefineSettings, GuidanceWeights, make_refine_fn, make_proximity_contact_fn
CASES = {
  "default": (RefineSettings(num_rounds=2, tau=10, dt=5), GuidanceWeights(lambda_pt=5.0)),
  "paper": (RefineSettings(num_rounds=2, tau=10, dt=5, floor="body", clean_endpoint=True, invert_iters=1,
                           schedule="linear", grad_mode="clip"), GuidanceWeights(rho=2.0, lambda_pt=5.0, grad_clip=0.5)),
  "released": (RefineSettings(num_rounds=2, tau=10, dt=5, carry="latent", cdir=False, through_denoiser=True,
                              mask_mode="soft"), GuidanceWeights(rho=0.5)),
}
out = {}
for name, (s, w) in CASES.items():
  r = make_refine_fn(S.denoiser(), make_proximity_contact_fn(margin=0.3), s)(S.denoiser_params(), S.inputs(), S.guidance_body(), S.STATS, w)
  out[f"{name}_x0"] = np.asarray(r.x0); out[f"{name}_x_rounds"] = np.asarray(r.x_rounds)
  out[f"{name}_step_losses"] = np.asarray(r.step_losses); out[f"{name}_total"] = np.asarray(r.losses.total)
  print(name, float(np.abs(r.x0 - S.inputs().x_init).max()), np.asarray(r.step_losses).ravel()[:4])
np.savez(sys.argv[1], **out)
