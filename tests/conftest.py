"""Session fixtures shared by every test folder: the tiny model (built once) and one local Ray."""

import os

import pytest

from cluster.ray_cluster import use_local_env

use_local_env()
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where CUDA exists (the device machine); elsewhere they are reported skipped."""
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from rollout.demo.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from cluster.config import ClusterConfig
    from cluster.ray_cluster import init_ray

    init_ray(ClusterConfig(num_cpus=2))
    yield ray
    ray.shutdown()
