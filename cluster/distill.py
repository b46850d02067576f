"""`qthink distill`: SFT data for the cold start (Q-Ponder): a teacher writes reasoning for each row and
only responses whose score lands within a tolerance of the MOS are kept.

The teacher is a VLM served by the rollout workers with an expert prompt, or, for the synthetic demo,
the template teacher (`rollout.demo.template_teacher.template_distill`), which writes reasoning from the
known distortion.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from rollout.manifest import write_manifest


def teacher_distill(teacher_dir: str, in_path: str | Path, out_path: str | Path, cfg, tolerance: float = 0.5,
                    samples: int = 4) -> dict:
    """Rollout workers serve the teacher; per row the first of `samples` responses within `tolerance` of
    the MOS is kept (rows with none are dropped and counted)."""
    from cluster.batches import request_for
    from cluster.evaluation import media_options
    from cluster.placement import rollout_pool
    from cluster.ray_cluster import init_ray
    from rewards import get_preset
    from rollout.manifest import ManifestReader
    from rollout.prompts import expert_question

    init_ray(cfg.cluster)
    pool = rollout_pool(cfg, teacher_dir)
    preset = get_preset(cfg.reward.preset)
    reader = ManifestReader(in_path, shuffle=False, options=media_options(cfg))
    manifest, out_dir = reader.manifest, Path(out_path).resolve().parent
    index = {r.id: i for i, r in enumerate(manifest.rows)}
    kept, dropped, batch = [], 0, []

    def flush():
        nonlocal dropped
        requests = [request_for(s, index[s.row.id], preset, cfg) for s in batch]
        for r, s in zip(requests, batch):
            r.question = expert_question(preset.question(s.row.media_type, cfg.data.prompt_style), s.row.media_type)
        for sample, group in zip(batch, pool.generate(requests, n=samples)):
            parsed = preset.parse([g.text for g in group])
            close = (~parsed.failed) & (np.abs(parsed.pred - sample.row.mos) <= tolerance)
            if close.any():
                row = manifest.relocated_row(index[sample.row.id], out_dir)
                kept.append(dataclasses.replace(row, reasoning=group[int(np.argmax(close))].text))
            else:
                dropped += 1
        batch.clear()

    for sample in reader.iter_epoch():
        batch.append(sample)
        if len(batch) == 32:
            flush()
    flush()
    write_manifest(kept, out_path)
    return {"rows": len(manifest.rows), "kept": len(kept), "dropped_out_of_tolerance": dropped,
            "unreadable": reader.skipped, "teacher": teacher_dir}
