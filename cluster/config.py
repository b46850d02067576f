"""One typed config tree for every qthink command (EasyR1-style: dataclasses + YAML + dotted overrides).

A run resolves its tree once (defaults <- YAML <- `section.key=value` overrides), validates every key and
type up front, and saves the resolved copy next to its outputs, so a run can always be reproduced from
its own folder. Unknown keys and wrong types fail with the dotted name of the offending key.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from learners.config import Dtype, LearnerConfig
from rewards.config import RewardConfig
from rollout.config import RolloutConfig
from rollout.demo.config import DemoConfig


class ConfigError(ValueError):
    """A config key that does not exist or a value of the wrong type; the message names the dotted key."""


class PlacementError(ConfigError):
    """The cluster cannot hold, or has not given within the timeout, what a role asks for, or a lost node's
    work has nowhere to go (cluster/placement.py): the fix is a smaller config or a bigger cluster."""


# Enum-like keys are Literal types: a value outside them fails at load, naming the key and the choices.
ENGINE_DTYPE = {"fp32": "float32", "bf16": "bfloat16"}  # vLLM's and torch's names for the dtypes


@dataclass
class ModelConfig:
    # HF model dir (Qwen2.5-VL family). Empty: the demo's tiny model (the `demo:` section, rollout/demo).
    path: str = ""
    dtype: Dtype = "fp32"


@dataclass
class DataConfig:
    # Parquet manifests (rollout/manifest.py). Empty train: the demo's synthetic benchmark, with SFT
    # reasoning from its template teacher (the `demo:` section, rollout/demo).
    train: str = ""
    sft: str = ""  # rows must carry `reasoning` (the SFT target)
    test: list[str] = field(default_factory=list)
    num_frames: int = 6  # frames sampled per video (VQAThinker trains with 6, tests with 12)
    max_pixels: int = 112 * 112  # images and frames are resized below this before the processor
    # frames: the video as frames; multiframe: PreResQ-R1's tiled global view + single local frames
    video_view: typing.Literal["frames", "multiframe"] = "frames"
    # paper: the papers' prompts; short: a one-line question for the tiny CPU demo (rollout/prompts.py)
    prompt_style: typing.Literal["paper", "short"] = "paper"


@dataclass
class TrainConfig:
    stages: list[str] = field(default_factory=lambda: ["sft", "grpo"])
    output_dir: str = "runs/demo"
    seed: int = 0
    prompts_per_step: int = 8  # B
    sft_batch_size: int = 16
    sft_steps: int = 100
    grpo_steps: int = 50
    one_step_off: bool = False  # rollout of step t+1 overlaps training of step t
    eval_every: int = 10
    eval_limit: int = 0  # 0: every held-out item
    eval_samples: int = 1  # 1: greedy; N: mean of N sampled scores
    eval_temperature: float | None = None  # of those N samples; None: rollout.temperature (verl's val_kwargs)
    save_every: int = 10
    keep_last: int = 2
    # empty: <output_dir>/checkpoints; else this run's own absolute folder or pyarrow filesystem URI
    # (s3://, gs://, hdfs://, file://) that every node can reach, as Ray Train's storage_path
    checkpoint_dir: str = ""


@dataclass
class ClusterConfig:
    address: str = "local"  # local: start Ray here; "auto" or "ray://host:port": join a cluster
    num_cpus: int = 0  # local only; 0 = every CPU of this machine
    namespace: str = "qthink"
    # Local Ray only: > 0 turns Ray's metrics on and exports them, Serve's and qthink's, in Prometheus format
    # at http://<node>:<port>/metrics (docs/design.md, "Serving"); 0 keeps them off, as training on a small
    # machine wants. A cluster keeps its own setting.
    metrics_export_port: int = 0
    # how long a role's placement group may wait for free resources the cluster has (cluster/placement.py);
    # a request the cluster cannot hold at all fails at once
    placement_timeout_s: float = 120.0
    # Extra Ray resources every bundle of a role asks for, to put roles on kinds of nodes: {rollout:
    # {rollout_node: 1}} puts engines only on nodes started with `ray start --resources='{"rollout_node": 8}'`
    # (roles: rollout, learner, reward)
    role_resources: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class ServeConfig:
    min_replicas: int = 1
    max_replicas: int = 2
    target_ongoing_requests: float = 4.0
    max_ongoing_requests: int = 32  # per replica; one engine batches whatever is in flight
    upscale_delay_s: float = 30.0  # Ray Serve's defaults; the load benchmark shortens them
    downscale_delay_s: float = 600.0
    look_back_period_s: float = 30.0  # the window the ongoing-request count is averaged over
    # A new model dir (`serve deploy` with new args) replaces replicas one by one; with a surge > 0 each old
    # replica keeps serving until its replacement is ready, so one replica still means no downtime.
    max_surge_percent: int = 100
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 4096 * 4096  # of an uploaded image or video frame, read from its header
    max_frames: int = 64  # frames sampled from one video (a score request's num_frames)
    max_duration_s: float = 120.0
    max_samples: int = 16  # n of one request (score samples, chat choices)
    request_timeout_s: float = 60.0
    allow_remote_urls: bool = False  # http(s) image_url fetched by the replica; never file:// or paths
    model_name: str = ""  # the id clients see; empty: the model dir's name
    host: str = "127.0.0.1"  # 0.0.0.0 to accept other machines (then api_keys_file, or allow_unauthenticated)
    port: int = 8000
    # One key per line, sent as `Authorization: Bearer <key>` (cluster/serve_auth.py says why a file). Empty: no
    # keys, which `qthink serve` accepts only on a loopback host or with allow_unauthenticated.
    api_keys_file: str = ""
    allow_unauthenticated: bool = False


@dataclass
class LoggingConfig:
    tensorboard: bool = True
    wandb_project: str = ""
    mlflow_uri: str = ""
    progress_bar: bool = True


@dataclass
class QThinkConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)


def _coerce(value, annotation, key: str):
    """Check (and minimally coerce) one value against its annotation; errors name the dotted key."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: got {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value in allowed:
            return value
        raise ConfigError(f"{key}: expected one of {' | '.join(map(str, allowed))}, got {value!r}")
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(annotation, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(annotation)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = typing.get_args(annotation)
        return {_coerce(k, kt, key): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-6" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
    else:
        raise ConfigError(f"{key}: unsupported annotation {annotation!r}")
    raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")


def _build(cls, values: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in values.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in known:
            raise ConfigError(f"{key}: unknown key (known: {', '.join(sorted(known))})")
        kwargs[name] = _coerce(value, hints[name], key)
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
    node[parts[-1]] = value


# How a trained model must be prompted and fed: `final/` records these (MODEL_SETTINGS_FILE), and eval,
# serve and distill start from them, so a model trained on the short prompt is not asked the paper's one.
MODEL_SETTINGS = ("reward.preset", "data.prompt_style", "data.video_view", "data.num_frames", "data.max_pixels")
MODEL_SETTINGS_FILE = "qthink.json"


def write_model_settings(config: QThinkConfig, model_dir: str | Path) -> None:
    tree = dataclasses.asdict(config)
    settings = {key: tree[key.split(".")[0]][key.split(".")[1]] for key in MODEL_SETTINGS}
    (Path(model_dir) / MODEL_SETTINGS_FILE).write_text(json.dumps(settings, indent=1))


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = (),
                model_dir: str | Path | None = None) -> QThinkConfig:
    """Defaults <- the settings `model_dir` was trained with (if it records them) <- YAML file <-
    `section.key=value` overrides (values parsed as YAML scalars)."""
    tree = dataclasses.asdict(QThinkConfig())
    recorded = Path(model_dir or "") / MODEL_SETTINGS_FILE
    if model_dir and recorded.is_file():
        for dotted, value in json.loads(recorded.read_text()).items():
            if dotted in MODEL_SETTINGS:
                _set_dotted(tree, dotted, value)
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        for section, values in loaded.items():
            if section not in tree:
                raise ConfigError(f"{section}: unknown section (known: {', '.join(tree)})")
            if not isinstance(values, dict):
                raise ConfigError(f"{section}: expected a mapping, got {values!r}")
            for name, value in values.items():
                tree[section][name] = value  # unknown names are caught by _build
    for item in overrides:
        dotted, sep, raw = item.partition("=")
        if not sep or not dotted:
            raise ConfigError(f"{item!r}: overrides are written section.key=value")
        _set_dotted(tree, dotted.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return check_values(_build(QThinkConfig, tree))


def check_values(config: QThinkConfig) -> QThinkConfig:
    """Values each key's type cannot say: names of presets and reward components, numeric bounds. Run by
    every command at load, before Ray or an engine starts."""
    from rewards.plugins import is_plugin_name
    from rewards.presets import PRESETS

    reward, learner, rollout = config.reward, config.learner, config.rollout
    if reward.preset not in PRESETS:
        raise ConfigError(f"reward.preset: expected one of {' | '.join(PRESETS)}, got {reward.preset!r}")
    components = PRESETS[reward.preset].component_names
    for name in reward.weights:
        if name not in components and not is_plugin_name(name):
            raise ConfigError(f"reward.weights.{name}: preset {reward.preset!r} has no component {name!r} "
                              f"(components: {', '.join(components)}; a plugin is written module:function)")
    for spec in reward.custom:
        if not is_plugin_name(spec):
            raise ConfigError(f"reward.custom: {spec!r} is not module:function")
    if learner.dual_clip != 0 and learner.dual_clip <= 1:
        raise ConfigError(f"learner.dual_clip: 0 (off) or a bound c > 1, got {learner.dual_clip}")
    if learner.rollout_is_cap <= 0:
        raise ConfigError(f"learner.rollout_is_cap: must be > 0, got {learner.rollout_is_cap}")
    for key, section in (("rollout", rollout), ("reward", reward)):
        if section.call_timeout_s <= 0 or section.max_restarts < 0:
            raise ConfigError(f"{key}.call_timeout_s must be > 0 and {key}.max_restarts >= 0, got "
                              f"{section.call_timeout_s}, {section.max_restarts}")
    if set(config.cluster.role_resources) - {"rollout", "learner", "reward"}:
        raise ConfigError(f"cluster.role_resources: roles are rollout, learner, reward; got "
                          f"{sorted(config.cluster.role_resources)}")
    if rollout.sync_bucket_mb < 1 or rollout.sync_timeout_s <= 0:
        raise ConfigError(f"rollout.sync_bucket_mb must be >= 1 and rollout.sync_timeout_s > 0, got "
                          f"{rollout.sync_bucket_mb}, {rollout.sync_timeout_s}")
    if learner.micro_batch_size < 1 or learner.max_tokens_per_micro < 0:
        raise ConfigError(f"learner.micro_batch_size must be >= 1 and learner.max_tokens_per_micro >= 0 (0: off), got "
                          f"{learner.micro_batch_size}, {learner.max_tokens_per_micro}")
    if learner.lora.rank < 0 or (learner.lora.rank and not learner.lora.target_modules):
        raise ConfigError(f"learner.lora: rank must be >= 0 (0: off) with target_modules given, got rank "
                          f"{learner.lora.rank}, target_modules {learner.lora.target_modules}")
    if learner.lora.rank and learner.zero_stage == 3:
        raise ConfigError("learner.lora with learner.zero_stage 3: LoRA trains under ZeRO 0-2 (its optimizer state is "
                          "small and the frozen base stays whole on every rank); set learner.zero_stage=2")
    if rollout.chunks_per_worker < 1:
        raise ConfigError(f"rollout.chunks_per_worker: must be >= 1, got {rollout.chunks_per_worker}")
    if rollout.tensor_parallel_size < 1 or (rollout.tensor_parallel_size > 1 and rollout.gpus_per_worker > 1):
        raise ConfigError(f"rollout.tensor_parallel_size must be >= 1, and with more than 1 rollout.gpus_per_worker is "
                          f"the GPUs of each tensor-parallel rank: 1 (vLLM places one rank per GPU); got "
                          f"{rollout.tensor_parallel_size}, {rollout.gpus_per_worker}")
    return config


def check_inputs(model: str = "", manifests: typing.Sequence[str] = ()) -> None:
    """Fail before any role starts, naming what is missing: otherwise a wrong path surfaces as a library
    traceback (a model path read as a hub repo id) after Ray and the engines are up. Paths are taken as
    the readers take them: `~` is not expanded."""
    # "Qwen/Qwen2.5-VL-7B-Instruct" is a hub id (fetched where a hub is reachable); "runs/final" is a
    # local path when its first folder exists here
    def hint(path) -> str:
        return " (~ is not expanded here: give the full path)" if str(path).startswith("~") else ""

    hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", model) and not Path(model.split("/")[0]).exists()
    if model and not hub_id and not (Path(model) / "config.json").is_file():
        raise ConfigError(f"model {model!r}: not a model directory (no config.json there){hint(model)}")
    for path in manifests:
        if not Path(path).is_file():
            raise ConfigError(f"data: manifest {path!r} does not exist{hint(path)}")


def check_train_config(config: QThinkConfig) -> None:
    """What `qthink train` needs before it starts anything: stages it can run, the inputs they read and a
    checkpoint filesystem that resolves."""
    stages, data = config.train.stages, config.data
    if not stages or len(set(stages)) != len(stages) or not set(stages) <= {"sft", "grpo"}:
        raise ConfigError(f"train.stages: expected a non-empty list of distinct stages from [sft, grpo], got {stages}")
    if "sft" in stages and data.train and not data.sft:
        raise ConfigError("train.stages includes sft but data.sft is not set (only the embedded demo, with no "
                          "data.train, makes its own SFT data): set data.sft or train.stages=[grpo]")
    if "grpo" in stages and not (config.rollout.temperature > 0 and config.rollout.top_p == 1.0):
        raise ConfigError("rollout.temperature must be > 0 and rollout.top_p 1.0 for GRPO: the learner scores each "
                          "response under the full distribution at the rollout temperature, and a truncated one "
                          f"would bias every update (got temperature {config.rollout.temperature}, "
                          f"top_p {config.rollout.top_p})")
    check_inputs(config.model.path, [p for p in (data.train, data.sft if "sft" in stages else "", *data.test) if p])
    if "://" in config.train.checkpoint_dir:
        import pyarrow.fs

        try:
            pyarrow.fs.FileSystem.from_uri(config.train.checkpoint_dir)
        except (ValueError, OSError) as error:
            raise ConfigError(f"train.checkpoint_dir {config.train.checkpoint_dir!r}: {error}") from None


def config_to_yaml(config: QThinkConfig) -> str:
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)


def save_resolved(config: QThinkConfig, out_dir: str | Path) -> Path:
    path = Path(out_dir) / "config.resolved.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_to_yaml(config))
    return path
