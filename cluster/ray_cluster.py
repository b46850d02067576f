"""Start or join Ray the same way for every command.

Locally (CI, a laptop) qthink starts a private Ray on loopback with token auth off (Ray 2.60 turns it on
by default and a loopback-only cluster has no one to authenticate), no dashboard (it costs ~1 CPU-s
and a port), and neither Ray's metrics nor its task-event reports (`ray list tasks`, `ray timeline`): with
the dashboard off nothing reads them, and with 64 actors on 2 cores they took a quarter of all the CPU that
Ray and its actors spent around rollout chunks (benchmarks/README.md "Rollout throughput"); a served model
turns metrics on with `cluster.metrics_export_port`. On a
cluster, `address=auto` (or a job started by `ray job submit`, which sets RAY_ADDRESS) joins the running
cluster instead, with that cluster's own settings.
"""

from __future__ import annotations

import os
import socket

from cluster.config import ClusterConfig

# Actors share 2 cores here: torch's default thread count and OpenMP's spin-waiting made a GRPO step
# 35-40x slower (docs/design.md, "Environment notes"). Every process Ray starts inherits these; the CLI,
# the benchmarks and the tests set them in their own process too (`use_local_env`), before torch starts.
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false", "RAY_AUTH_MODE": "disabled"}


def use_local_env() -> None:
    """WORKER_ENV in this process, where the caller has not set a value of its own."""
    for key, value in WORKER_ENV.items():
        os.environ.setdefault(key, value)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS has just called free (for a process group's master, a test server)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


LOCAL_SYSTEM_CONFIG = {"task_events_report_interval_ms": 0}


def init_ray(config: ClusterConfig | None = None):
    import ray

    config = config or ClusterConfig()
    if ray.is_initialized():
        return ray.get_runtime_context()
    if config.address == "local" and not os.environ.get("RAY_ADDRESS"):  # inside `ray job submit`: join
        os.environ.update(WORKER_ENV)
        num_cpus = config.num_cpus or os.cpu_count()
        metrics = {"_metrics_export_port": config.metrics_export_port} if config.metrics_export_port else {}
        return ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            namespace=config.namespace,
            runtime_env={"env_vars": WORKER_ENV},
            log_to_driver=True,
            _system_config={**LOCAL_SYSTEM_CONFIG, "enable_metrics_collection": bool(metrics)},
            **metrics,
        )
    # Joining: no runtime_env here, it would replace the one `ray job submit` gave (its working_dir).
    return ray.init(address=config.address if config.address != "local" else "auto", namespace=config.namespace)
