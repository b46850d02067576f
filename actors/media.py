"""Requests whose media wait in Ray's object store (`RequestRef`, made by cluster/remote_media.py), fetched
by the actor that uses them, on its own node: the driver only ever holds the references."""

from __future__ import annotations

import dataclasses

import ray

from rollout.perturbations import perturbed_copy
from rollout.records import RequestRef, RolloutRequest


def fetched(requests: list) -> list[RolloutRequest]:
    """`requests` with every `RequestRef` replaced by the request it refers to: one fetch for all, the
    sampling seed set, a perturbed copy made from its original's frames."""
    refs = [r.ref for r in requests if isinstance(r, RequestRef)]
    stored = iter(ray.get(refs)) if refs else iter(())
    out = []
    for r in requests:
        if isinstance(r, RequestRef):
            request = dataclasses.replace(next(stored), seed=r.seed)
            r = perturbed_copy(request, r.perturb_seed) if r.perturb_seed is not None else request
        out.append(r)
    return out
