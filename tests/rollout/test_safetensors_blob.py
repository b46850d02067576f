"""The weight-sync blob is a plain safetensors file, read in place."""

import numpy as np
import torch
from safetensors.torch import load, save

from rollout.safetensors_blob import safetensors_blob, tensor_views


def _state():
    g = torch.Generator().manual_seed(0)
    return {"model.embed.weight": torch.randn(7, 3, generator=g),  # odd sizes: alignment comes from the order
            "visual.norm.weight": torch.randn(5, generator=g).to(torch.bfloat16),
            "model.layers.0.mlp.up.weight": torch.randn(3, 5, generator=g).to(torch.float16),
            "model.position_ids": torch.arange(9, dtype=torch.int64),
            "model.mask": torch.tensor([True, False, True]),
            "model.scale": torch.tensor(2.5),
            "model.empty": torch.zeros(0, 4)}


def _equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k], b[k]), k


def test_safetensors_reads_the_blob_and_the_blob_reader_reads_safetensors():
    state = _state()
    _equal(load(bytes(safetensors_blob(state))), state)
    _equal(tensor_views(save(state, metadata={"format": "pt"})), state)


def test_views_share_the_blobs_memory():
    blob = safetensors_blob(_state())
    views = tensor_views(blob)
    start, end = blob.ctypes.data, blob.ctypes.data + blob.nbytes
    assert all(start <= v.data_ptr() and v.data_ptr() + v.nbytes <= end for v in views.values() if v.numel())
    embed = views["model.embed.weight"]
    at = embed.data_ptr() - start
    blob[at:at + 4] = np.frombuffer(np.float32(42.0).tobytes(), np.uint8)
    assert embed[0, 0].item() == 42.0


def test_a_read_only_buffer_is_read_without_a_copy_or_a_warning(recwarn):
    blob = safetensors_blob(_state())
    blob.flags.writeable = False  # as Ray hands numpy arrays out of the object store
    _equal(tensor_views(blob), _state())
    assert not [w for w in recwarn if "not writable" in str(w.message)]
    assert isinstance(blob, np.ndarray)


def test_a_buffer_of_the_right_size_is_reused_and_one_of_another_size_is_not():
    state = _state()
    first = safetensors_blob(state)
    state["model.embed.weight"] += 1
    again = safetensors_blob(state, reuse=first)
    assert again is first
    _equal(load(bytes(again)), state)
    state["model.extra"] = torch.ones(2)
    grown = safetensors_blob(state, reuse=first)
    assert grown is not first and grown.nbytes > first.nbytes
    _equal(load(bytes(grown)), state)
