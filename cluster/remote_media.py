"""A step's media decoded by Ray tasks on the rollout engines' nodes, not in the driver: a few tasks decode
the step's rows and leave each engine request (pixels and all) in the object store. GRPO, SFT and evaluation
all take their media this way; for SFT rows the tasks also expand the prompt's token ids (the processor needs
the decoded media for that, and the learner needs the ids). The driver keeps `RequestRef`s: ids, seeds and
object references. Rollout workers and learner ranks fetch the requests on their own nodes, and a rollout
worker makes a video's perturbed copy (VQAThinker's temporal reward) from the frames it fetched. So the
pixels of a step never pass through the driver (it used to decode them and send them twice: to the engines,
then to the learner ranks; benchmarks/driver_bytes.py measures both).

The reader's cursor, its skip counts and the per-request seeds are those of decoding in the driver: rows
are taken in order, a bad row is recorded by the reason its task reports, the seeds are given by position
among the usable rows once their statuses are in, and a resumed run draws the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import ray

from cluster.batches import media_request, prompt_token_ids
from rollout.manifest import ManifestReader, ManifestRow, MediaError, load_media
from rollout.records import RequestRef

DECODE_TASKS = 4  # per batch of rows: bounds the worker processes Ray starts for them (each imports decord)


@dataclass(frozen=True)
class Decoded:
    """What the driver learns of a usable row's request: its media type, and the prompt's token ids when
    asked for (SFT)."""

    media_type: str
    prompt_ids: list[int] | None = None


@lru_cache(maxsize=2)
def _processor(model_dir: str):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(model_dir)


@ray.remote(num_cpus=0)
def decode_requests(rows: list[tuple[ManifestRow, object]], options, context, prompt_ids: bool = False) -> list:
    """Per row: `Decoded` and the request, or (reason, detail) and None for media that cannot be used; as
    separate returns, so the driver fetches the statuses and leaves the requests where they are."""
    preset, cfg = context
    out = []
    for row, source in rows:
        try:
            media = load_media(row, source, options)
        except MediaError as error:
            out += [(error.reason.value, error.detail), None]
            continue
        request = media_request(row.id, row.media_type, media, preset, cfg)
        ids = prompt_token_ids(_processor(cfg.model.path), request) if prompt_ids else None
        out += [Decoded(request.media_type, ids), request]
    return out


def _endless(reader: ManifestReader):
    while True:
        yield from reader.rows_of_epoch()


def decode_remote(taken: list[tuple[ManifestRow, object]], options, context, where: list[dict] | None = None,
                  prompt_ids: bool = False) -> list[tuple[object, object]]:
    """Per (row, media source): `Decoded` and its request's object reference, or (reason, detail) and a
    reference to nothing for media that cannot be used. `where`: task options, taken in turn by the decode
    tasks (cluster.placement.near_engines)."""
    if not taken:
        return []
    size = -(-len(taken) // DECODE_TASKS)
    returns = []
    for k, i in enumerate(range(0, len(taken), size)):
        part, placed = taken[i:i + size], where[k % len(where)] if where else {}
        returns += decode_requests.options(num_returns=2 * len(part), **placed).remote(part, options, context,
                                                                                     prompt_ids)
    return list(zip(ray.get(returns[::2]), returns[1::2]))  # the statuses fetched, the requests left in place


def usable_requests(reader: ManifestReader, count: int, context, where: list[dict] | None = None,
                    prompt_ids: bool = False) -> list[tuple[ManifestRow, Decoded, object]]:
    """The next `count` usable rows, each with its `Decoded` and its request's object; bad rows are recorded
    on the reader. `where` and `prompt_ids`: as for `decode_remote`."""
    out: list[tuple[ManifestRow, Decoded, object]] = []
    misses, rows = 0, _endless(reader)
    while len(out) < count:
        taken = [(row, reader.manifest.media_source(index)) for index, row in
                 (next(rows) for _ in range(count - len(out)))]
        for (row, _), (status, request) in zip(taken, decode_remote(taken, reader.options, context, where,
                                                                    prompt_ids)):
            if isinstance(status, Decoded):  # else why the row cannot be used
                out.append((row, status, request))
                misses = 0
                continue
            reader.record_skip(row, *status)
            misses += 1
            if misses >= len(reader.manifest):
                raise RuntimeError(f"{reader.manifest.path}: no usable media left "
                                   f"(skipped: {dict(reader.skip_counts)})")
    return out


def remote_rollout_batch(reader: ManifestReader, count: int, step: int, temporal: bool, context,
                         seed: int, where: list[dict] | None = None) -> tuple[list[ManifestRow], list[RequestRef]]:
    """`count` originals, then a perturbed copy of each video when the temporal reward is on; per-request
    seeds derive from (seed, step, position) so a resumed run samples the same responses. `context`: a
    reference to (reward preset, config), put once per run; `where`: as for `decode_remote`."""
    usable = usable_requests(reader, count, context, where)
    originals = [RequestRef(row.id, decoded.media_type, ref, seed * 1_000_003 + step * 1009 + i)
                 for i, (row, decoded, ref) in enumerate(usable)]
    perturbed = [RequestRef(r.prompt_id, r.media_type, r.ref, r.seed, "perturbed", seed * 7919 + step * 131 + i)
                 for i, r in enumerate(originals) if temporal and r.media_type == "video"]
    return [row for row, _, _ in usable], originals + perturbed
