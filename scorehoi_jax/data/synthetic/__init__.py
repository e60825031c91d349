"""Synthetic human-object interaction frames: posed bodies with procedural objects, rendered.

``generate_frame(seed, config)`` makes one frame (raw-frame format and the
two layouts, "capture" and "centred", in generator.py); ``generate(num, seed, out_dir, ...)`` writes a resumable,
sharded dataset with worker processes; ``iter_frames(out_dir)`` reads it.
"""

from scorehoi_jax.data.synthetic.generator import (
    SyntheticConfig,
    frame_seed,
    generate,
    generate_frame,
    iter_frames,
    shard_path,
)
from scorehoi_jax.data.synthetic.scenes import INTERACTIONS

__all__ = ["INTERACTIONS", "SyntheticConfig", "frame_seed", "generate", "generate_frame", "iter_frames",
           "shard_path"]
