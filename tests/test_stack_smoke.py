"""Proof that the installed stack works together: DeepSpeed (gloo) across Ray actors, decord reading PyAV.

(vLLM inside a Ray actor is proven by tests/actors/test_rollout_worker.py.)
"""


import numpy as np
import pytest
import ray
import torch

from cluster.ray_cluster import free_port


@ray.remote(num_cpus=1)
class _ZeroRank:
    def step(self, rank, world, port, x, y, init):
        import os

        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                          LOCAL_RANK="0", DS_ACCELERATOR="cpu")
        import deepspeed

        torch.set_num_threads(1)
        deepspeed.init_distributed(dist_backend="gloo")
        model = torch.nn.Linear(4, 1)
        model.load_state_dict(init)
        engine, *_ = deepspeed.initialize(
            model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            config={"train_micro_batch_size_per_gpu": len(x), "zero_optimization": {"stage": 2},
                    "zero_allow_untested_optimizer": True, "gradient_clipping": 0.0},
        )
        loss = ((engine(torch.tensor(x)) - torch.tensor(y)) ** 2).mean()
        engine.backward(loss)
        engine.step()
        return {k: v.detach().clone() for k, v in engine.module.state_dict().items()}


@pytest.mark.slow
def test_two_rank_zero2_step_on_gloo_averages_gradients(ray_local):
    torch.manual_seed(0)
    init = torch.nn.Linear(4, 1).state_dict()
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(2)]
    ys = [rng.normal(size=(3, 1)).astype(np.float32) for _ in range(2)]
    port = free_port()
    ranks = [_ZeroRank.remote() for _ in range(2)]
    out = ray.get([r.step.remote(i, 2, port, xs[i], ys[i], init) for i, r in enumerate(ranks)], timeout=600)
    # Expected: one SGD step on the mean of the two ranks' gradients, computed here without DeepSpeed.
    ref = torch.nn.Linear(4, 1)
    ref.load_state_dict(init)
    grads = []
    for x, y in zip(xs, ys):
        ref.zero_grad()
        ((ref(torch.tensor(x)) - torch.tensor(y)) ** 2).mean().backward()
        grads.append({k: p.grad.clone() for k, p in ref.named_parameters()})
    for k in init:
        expected = init[k] - 0.1 * (grads[0][k] + grads[1][k]) / 2
        torch.testing.assert_close(out[0][k], expected, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(out[1][k], expected, atol=1e-6, rtol=1e-5)


def test_decord_reads_a_video_written_by_pyav(tmp_path):
    import av
    import decord

    path = tmp_path / "clip.mp4"
    frames = [np.full((112, 112, 3), 20 * i, dtype=np.uint8) for i in range(10)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 112, 112, "yuv420p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    vr = decord.VideoReader(str(path))
    assert len(vr) == 10
    got = vr.get_batch([0, 5, 9]).asnumpy()
    assert got.shape == (3, 112, 112, 3)
    # (decord2 3.4.0 returns 4 channels for some sizes, e.g. 96x64: get_batch then fails; 112x112 is safe.)
    assert np.abs(got.mean(axis=(1, 2, 3)) - [0, 100, 180]).max() < 6  # flat grey levels survive x264
