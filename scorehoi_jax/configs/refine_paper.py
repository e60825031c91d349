"""ScoreHOI refinement, paper-faithful (paper §3.3–3.6, Tables 3–4 baseline).

N = 10 rounds, τ = 50, Δt = 2 (25 inversion + 25 guided DDIM steps per round),
contacts re-predicted every round (CDIR), differentiable SDF penetration term,
conditions c_I / c_G used by the denoiser, ρ = 1 constant.

Benchmark (random-init weights, synthetic inputs):

  .venv/bin/python experiments/bench_refine.py --config configs/refine_paper.py --batch 1,8,64

writes experiments/results/refine.md: ≥ 2 samples/s at batch 64 on a 2-core CPU
(measured 5–7 samples/s on a shared 2-core EPYC, ≈0.14–0.2 s per sample; see that
file). Compile ≈10–30 s once per shape. Every ablation row of paper Table 3 is
one field (refine.use_diffusion / cdir / use_guidance / use_ho / use_pt / use_of,
denoiser.use_image_cond / use_geo_cond), Table 4 is refine.num_rounds / tau / dt;
override from Python (cfg.refine.cdir = False) or with ml_collections flags
(--config.refine.dt=5). ``get_config("runlocal")`` shrinks N and the DDIM grid
for smoke tests.
"""

import ml_collections


def get_config(arg=None):
  cfg = ml_collections.ConfigDict()

  cfg.diffusion = ml_collections.ConfigDict(dict(T=1000, s=0.008))

  cfg.refine = ml_collections.ConfigDict(dict(
      num_rounds=10,  # N (Table 4).
      tau=50,  # τ as an index of the T = 1000 schedule (Table 4).
      dt=2,  # Δt (Table 4).
      use_diffusion=True,  # Table 3 "w/o diffusion" = False.
      cdir=True,  # Table 3 "w/o CDIR" = False (masks frozen at the initial estimate).
      use_guidance=True,  # Table 3 "No guidance" = False.
      use_ho=True,  # Table 3 "w/o L_ho" = False.
      use_of=True,  # Table 3 "w/o L_of" = False.
      use_pt=True,  # Table 3 "w/o L_pt" = False.
      pt_mode="sdf",  # 'sdf' (paper, differentiable) | 'inert' (released) | 'off'.
      carry="x0",  # Next round starts from x̃0 (Alg. A line 13) | 'latent' (released).
      through_denoiser=False,  # ∇ through ε_φ as well (released: False).
      schedule="constant",  # Guidance weight over t: constant | linear | cosine.
      grad_mode="none",  # none | clip | normalize (per sample, norm guidance.grad_clip).
      mask_mode="hard",  # hard: M = [p > mask_threshold] (released) | soft: M = p.
      # "model": the thresholds calibrated for the model (evaluation/calibration.py), 0.5 for a model without
      # them (released). Ours is trained with a class-balanced contact BCE, which scales the predicted odds
      # of contact up by n_neg/n_pos; its calibrated cut is what 0.5 means for a plain-BCE model.
      mask_threshold="model",
      # body: the known ground plane where the data has one, else estimated from the body (pelvis up axis,
      # through the lowest point); lowest: the released implicit floor, normal to camera −y, which tilts
      # objects by the camera's pitch; plane: inputs.ground_plane only.
      floor="body",
      up=(0.0, -1.0, 0.0),  # Camera axes, y down.
      # x holds absolute hand rotations (our models and readers); True means offsets from the MANO mean
      # (released checkpoints' convention) and is refused by Reconstructor: the mean would be added twice.
      hand_mean=False,
      # Unguided drift: an unguided round should return its input. ᾱ_0 := 1 at the grid's clean end and one
      # fixed-point step per inversion step cut the object's drift over 10 unguided rounds from 69 mm to
      # 1.4 mm on the demo frames (experiments/results/drift.md). Released: False, 0.
      clean_endpoint=True,
      invert_iters=1,
      # Image evidence (beyond the paper, off here; configs/refine_reconstruct.py turns it on): L_mask in L_P
      # and the placement fit to the masks before refining (refine.fit_steps Adam steps).
      use_mask=False,
      fit_steps=0,
      pose_fit_steps=0,  # Then a silhouette fit of all of x (image_evidence.fit_pose) ...
      pose_fit_prior=1.0,  # ... with this weight on ‖x − x_start‖²,
      pose_fit_gmm=0.0,  # ... and this one on the body pose's −log p under the pose classes' mixture.
      pose_hypotheses=False,  # ... also from each pose class's typical pose; the best silhouette wins.
      root_turns=1,  # ... and from each of those turned by k·360°/root_turns about the body's vertical axis.
      object_turns=1,  # Then the object tried turned by k·360°/object_turns about its own vertical axis.
      start_physical=0.0,  # The starts judged by L_mask + this × (λ_of L_of + λ_pt L_pt) / λ_mask (0: off).
      fit_finalists=1,  # The best this many starts fitted on with the dense points before one is kept.
      final_pose_fit_steps=0,  # After the sampling: all of x polished on L_mask + L_P / λ_mask ...
      final_pose_fit_prior=1.0,  # ... with this weight on ‖x − x̃0‖²;
      final_fit_steps=0,  # then the pelvis position alone re-fitted to the masks.
      # Schedules (diffusion/refine.py docstring; the defaults are the paper's): λ(t) shape per term, e.g.
      # {"pt": "linear"} with guidance.lambda_end.pt the value at t = 0; K guidance corrections per step;
      # DDIM η > 0 (guidance.eta, guidance.seed).
      term_schedules=ml_collections.ConfigDict(),
      grad_steps=1,
      stochastic=False,
      trace=False,  # Per-step, per-term traces in RefineOutput.trace (memory; `scorehoi sweep` turns it on).
      trace_x0=False,
  ))

  cfg.guidance = ml_collections.ConfigDict(dict(
      rho=1.0,  # ρ (released gradient_scale).
      lambda_ho=0.5,  # Released w_inter.
      lambda_of=0.5,  # Released w_inter_o_f.
      # L_pt is a *mean* depth over 431 points (paper E[·]); 5.0 gives a point 1 cm
      # deep about the pull of a contact point 1 cm beyond the margin under λ_ho.
      lambda_pt=5.0,
      margin=0.02,  # δ (m).
      grad_clip=1.0,  # Used by grad_mode clip/normalize only.
      lambda_mask=0.0,  # λ_mask of the image-evidence term (used when refine.use_mask).
      # Schedules, traced (a sweep over them never recompiles); these defaults change nothing.
      rho_rounds=1.0,  # ρ multiplier per round: a number or a list of num_rounds numbers.
      lambda_end=ml_collections.ConfigDict(),  # {term: λ at t = 0} for refine.term_schedules.
      t_lo=-float("inf"),  # Guidance window: only steps with t_lo <= t <= t_hi are guided.
      t_hi=float("inf"),
      eta=0.0,  # DDIM η (refine.stochastic=True).
      seed=0,
      # Per-part multipliers of the guidance step (6D rotations, metres and normalised betas share one ρ).
      scale_body=1.0, scale_hands=1.0, scale_obj_rot=1.0, scale_obj_trans=1.0, scale_betas=1.0,
  ))

  cfg.denoiser = ml_collections.ConfigDict(dict(
      compat_widths=False,  # True: the released widths (speed comparison only).
      model_dim=384, hidden_dim=768, num_blocks=3, time_dim=256,
      betas_model_dim=64, betas_hidden_dim=128, num_betas_blocks=2, betas_time_dim=64,
      token_dim=256, attn_dim=256, num_heads=4,
      use_image_cond=True,  # Table 3 "w/o c_I" = False.
      use_geo_cond=True,  # Table 3 "w/o c_G" = False (both False: "No condition").
  ))

  cfg.contact = ml_collections.ConfigDict(dict(
      predictor="proximity",  # Geometric stand-in; the learned ContactFormer is passed in by the caller.
      margin=0.05, scale=0.01, floor_margin=0.05,
  ))

  cfg.betas_stats = ml_collections.ConfigDict(dict(num=10, min=-3.0, max=3.0))
  cfg.body = ml_collections.ConfigDict(dict(path=ml_collections.FieldReference(None, field_type=str),
                                            num_guidance_vertices=431))

  if arg == "runlocal":
    cfg.refine.num_rounds = 2
    cfg.refine.dt = 25
  return cfg
