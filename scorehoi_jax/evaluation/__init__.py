"""Evaluation: the field's metrics (and, later, the batched evaluator)."""

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
