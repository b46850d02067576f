"""Code that runs inside vLLM's worker processes: the `gloo` weight-transfer engine.

vLLM 0.32 drives weight updates through four worker calls (`init_weight_transfer_engine`,
`start_weight_update`, `update_weights`, `finish_weight_update`) and ships engines for CUDA only (`nccl`,
`ipc`: CUDA streams). `GlooWeightTransferEngine` speaks the same four phases over a gloo group
(rollout/weight_transfer.py), so CPU runs and CI exercise the protocol GPU clusters run; on GPUs the same
engine runs its group with NCCL. `register` makes it backend "gloo" in every process vLLM starts (a vLLM
plugin, see pyproject.toml).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import torch
from vllm.distributed.weight_transfer import WeightTransferEngineFactory
from vllm.distributed.weight_transfer.base import (
    WeightTransferEngine,
    WeightTransferInitInfo,
    WeightTransferUpdateInfo,
)

from rollout.weight_transfer import BucketReceiver, metas_from_info, open_group


def repack_tied_output_layer(model: torch.nn.Module) -> None:
    """A tied lm_head receives no weight of its own, so vLLM does not re-process it after new weights; on
    CPU it keeps a PACKED copy of the old embedding (oneDNN/SGL GEMM) and would sample from the old output
    layer (measured: 0.35 nats/token off). Re-pack it from the new shared weight."""
    lm_head = getattr(getattr(model, "language_model", model), "lm_head", None)
    if getattr(model.config.get_text_config(), "tie_word_embeddings", False) and hasattr(lm_head, "quant_method"):
        lm_head.quant_method.process_weights_after_loading(lm_head)


class KeptLayers(logging.Filter):
    """vLLM warns "<Layer>: Failed to load weights" for each layer that received nothing in an update and keeps
    its tensors: derived buffers (rotary caches, image normalisation), a tied lm_head (re-packed above), every
    layer of a frozen vision tower. Every sync, in every engine: for a 7B with a frozen tower that is hundreds of
    alarming lines. They are counted by class and said once, and again only when the set changes; a weight
    that should have changed and did not still shows as the run's `rollout_logprob_gap`."""

    LAYERWISE = "vllm.model_executor.model_loader.reload.layerwise"

    def __init__(self):
        super().__init__()
        self.said: Counter = Counter()
        self.now: Counter = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "%s: Failed to load weights":
            self.now[record.args[0]] += 1
            return False
        return True

    def __enter__(self) -> KeptLayers:
        self.now = Counter()
        logging.getLogger(self.LAYERWISE).addFilter(self)
        return self

    def __exit__(self, *exc) -> None:
        logger = logging.getLogger(self.LAYERWISE)
        logger.removeFilter(self)
        if self.now and self.now != self.said:
            logger.info("weight update: layers that received no weights keep their tensors (buffers, a tied "
                        "lm_head, a frozen tower): %s", ", ".join(f"{n} x{c}" for n, c in sorted(self.now.items())))
        self.said = self.now


@dataclass
class GlooInitInfo(WeightTransferInitInfo):
    master_address: str
    master_port: int
    rank_offset: int  # this engine's first rank in the group: 1 + engine index x tensor-parallel size
    world_size: int
    timeout_s: float


@dataclass
class GlooUpdateInfo(WeightTransferUpdateInfo):
    names: list[str]
    dtype_names: list[str]
    shapes: list[list[int]]
    buckets: list[list[int]] = field(default_factory=list)


class GlooWeightTransferEngine(WeightTransferEngine[GlooInitInfo, GlooUpdateInfo]):
    init_info_cls = GlooInitInfo
    update_info_cls = GlooUpdateInfo
    supports_draft_weight_update = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.group, self.receiver = None, None
        self.kept_layers = KeptLayers()

    def init_transfer_engine(self, init_info: GlooInitInfo) -> None:
        self.shutdown()  # a rebuilt group replaces the old one
        rank = init_info.rank_offset + self.parallel_config.rank
        backend = "nccl" if self.device.type == "cuda" else "gloo"  # as the learner's, whose ranks hold GPUs
        self.group = open_group(init_info.master_address, init_info.master_port, rank, init_info.world_size,
                                init_info.timeout_s, backend)

    def start_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

        initialize_layerwise_reload(self.model)

    def update_weights(self, update_info: dict) -> None:
        self.receive_weights(self.parse_update_info(update_info))  # no device to synchronize

    def receive_weights(self, update_info: GlooUpdateInfo) -> None:
        if self.group is None:
            raise RuntimeError("gloo weight transfer: update_weights before init_weight_transfer_engine")
        metas = metas_from_info(update_info.names, update_info.dtype_names, update_info.shapes)
        if self.receiver is None or not self.receiver.matches(metas, update_info.buckets):
            self.receiver = BucketReceiver(metas, update_info.buckets, self.device)
        self.receiver.receive(self.group, self.model.load_weights)

    def finish_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

        with self.kept_layers:
            finalize_layerwise_reload(self.model, self.model_config)
        repack_tied_output_layer(self.model)

    def shutdown(self) -> None:
        if self.group is not None:
            self.group.close()
            self.group = None


def register() -> None:
    """vLLM's plugin hook (pyproject's `vllm.general_plugins`): runs in every process vLLM starts."""
    if "gloo" not in WeightTransferEngineFactory._registry:
        WeightTransferEngineFactory.register_engine("gloo", GlooWeightTransferEngine)
