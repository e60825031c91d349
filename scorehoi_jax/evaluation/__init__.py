"""Evaluation: the field's metrics (metrics.py), the batched evaluator (evaluator.py), baselines (baselines.py)."""

from scorehoi_jax.evaluation.metrics import (
    CONTACT_THRESHOLD,
    ContactPRF,
    FixedSamples,
    chamfer_after_procrustes,
    contact_from_reconstruction,
    contact_precision_recall,
    fixed_samples,
    fscore,
    make_batched_chamfer,
    reconstruction_metrics,
)
