import subprocess
import sys

import pytest

from cluster.config import ConfigError, QThinkConfig, load_config, save_resolved


def test_defaults_yaml_and_overrides_resolve_in_that_order(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("learner:\n  lr: 1.0e-5\n  zero_stage: 3\nrollout:\n  n: 6\n")
    cfg = load_config(f, ["learner.lr=2e-6", "train.stages=[grpo]", "reward.weights={rank: 0.5}"])
    assert cfg.learner.lr == 2e-6  # override beats YAML; "2e-6" is a YAML string, coerced to float
    assert cfg.learner.zero_stage == 3  # from YAML
    assert cfg.rollout.n == 6
    assert cfg.rollout.temperature == QThinkConfig().rollout.temperature  # default kept
    assert cfg.train.stages == ["grpo"]
    assert cfg.reward.weights == {"rank": 0.5}


@pytest.mark.parametrize(
    "override, named",
    [
        ("learner.lr=abc", "learner.lr"),
        ("rollout.n=2.5", "rollout.n"),
        ("learner.zero_stag=1", "learner.zero_stag"),
        ("nosection.x=1", "nosection"),
        ("train.stages=grpo", "train.stages"),
        ("rollout.enforce_eager=yes please", "rollout.enforce_eager"),
        # a typo in an enum-like value used to take the other branch silently (or fail after SFT)
        ("reward.rank_scope=globl", "reward.rank_scope"),
        ("data.video_view=multi", "data.video_view"),
        ("data.prompt_style=shrt", "data.prompt_style"),
        ("model.dtype=bfloat16", "model.dtype"),
        ("learner.dtype=bfloat16", "learner.dtype"),  # trained fp32 without a word
        ("learner.advantage=grpo2", "learner.advantage"),
        ("learner.loss_agg=token_mean", "learner.loss_agg"),
        ("learner.kl_estimator=k4", "learner.kl_estimator"),
        ("learner.lr_schedule=cosin", "learner.lr_schedule"),
        ("demo.tiny_size=huge", "demo.tiny_size"),
        ("demo.teacher=oracle", "demo.teacher"),
        ("reward.preset=vqathinkr", "reward.preset"),
        ("reward.weights={regresion: 2.0}", "reward.weights.regresion"),
        ("reward.custom=[mymodule]", "reward.custom"),
        ("learner.dual_clip=0.5", "learner.dual_clip"),
        ("rollout.call_timeout_s=0", "rollout.call_timeout_s"),
        ("rollout.sync_bucket_mb=0", "rollout.sync_bucket_mb"),
        ("cluster.role_resources.rollouts.rollout_node=1", "cluster.role_resources"),
        ("cluster.role_resources.rollout.rollout_node=many", "cluster.role_resources.rollout.rollout_node"),
    ],
)
def test_bad_keys_and_types_name_the_key(override, named):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value).startswith(named)


def test_yaml_unknown_key_is_named(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("rollout:\n  temprature: 0.7\n")
    with pytest.raises(ConfigError, match="rollout.temprature"):
        load_config(f)


def test_resolved_copy_loads_back_identically(tmp_path):
    cfg = load_config(None, ["learner.beta=0.0", "data.test=[a.parquet, b.parquet]"])
    path = save_resolved(cfg, tmp_path / "run")
    assert load_config(path) == cfg


def test_cli_config_show_fails_naming_the_key():
    r = subprocess.run([sys.executable, "-m", "cluster.cli", "config", "show", "learner.lr=abc"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "learner.lr" in r.stderr


def test_cli_help_lists_the_commands_that_exist():
    from cluster.cli import build_parser

    r = subprocess.run([sys.executable, "-m", "cluster.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert name in r.stdout
    for name in sub.choices:  # every listed command answers its own --help
        h = subprocess.run([sys.executable, "-m", "cluster.cli", name, "--help"], capture_output=True)
        assert h.returncode == 0, name


@pytest.mark.parametrize(
    "overrides, says",
    [
        (["data.train=/data/train.parquet"], "data.sft is not set"),
        (["train.stages=[sft, rl]"], "train.stages"),
        (["train.stages=[grpo, grpo]"], "train.stages"),
        (["train.stages=[]"], "train.stages"),
        (["data.train=/nowhere/t.parquet", "train.stages=[grpo]"], "'/nowhere/t.parquet' does not exist"),
        (["model.path=/nowhere/model"], "'/nowhere/model': not a model directory"),
        (["model.path=tests/nowhere-model"], "not a model directory"),  # relative, not a hub id: tests/ exists
        (["demo.teacher=oracle"], "demo.teacher"),
        (["learner.sft_lr_schedule=cosin"], "learner.sft_lr_schedule"),
        (["rollout.chunks_per_worker=0"], "rollout.chunks_per_worker"),
        (["rollout.tensor_parallel_size=2", "rollout.gpus_per_worker=2"], "GPUs of each tensor-parallel rank: 1"),
        (["rollout.tensor_parallel_size=0"], "rollout.tensor_parallel_size must be >= 1"),
        (["learner.dual_clip=1"], "learner.dual_clip"),
        (["learner.rollout_is=is"], "learner.rollout_is"),
        (["learner.rollout_is=tis", "learner.rollout_is_cap=0"], "learner.rollout_is"),
        (["rollout.top_p=0.9"], "rollout.top_p 1.0 for GRPO"),
        (["reward.max_restarts=-1"], "reward.max_restarts"),
        (["rollout.temperature=0"], "rollout.temperature must be > 0"),
        (["train.checkpoint_dir=nosuchfs://bucket/run"], "train.checkpoint_dir"),
        (["learner.lora.rank=8", "learner.zero_stage=3"], "learner.lora with learner.zero_stage 3"),
        (["learner.lora.rank=-1"], "learner.lora: rank must be >= 0"),
        (["learner.lora.rank=8", "learner.lora.target_modules=[]"], "learner.lora: rank must be >= 0"),
        (["learner.lora.ranks=8"], "learner.lora.ranks: unknown key"),
    ],
)
def test_train_rejects_what_it_cannot_run_before_starting_anything(tmp_path, overrides, says):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "cluster.cli", "train", f"train.output_dir={out}", *overrides],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert says in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()  # nothing was started or written


@pytest.mark.parametrize(
    "command, says",
    [
        (["eval", "--model", "/nowhere/model", "--data", "{manifest}"], "not a model directory"),
        (["eval", "--model", "{model}", "--data", "{manifest}", "/nowhere/b.parquet"], "'/nowhere/b.parquet'"),
        (["distill", "--teacher", "template", "--data", "/nowhere/a.parquet", "--out", "x.parquet"], "does not exist"),
        (["distill", "--teacher", "template", "--data", "{manifest}", "--out", "x.parquet",
          "demo.teacher=oracle"], "demo.teacher"),
    ],
)
def test_eval_and_distill_name_a_missing_model_or_manifest(tmp_path, command, says):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "a.parquet").write_bytes(b"")
    command = [c.format(model=tmp_path / "model", manifest=tmp_path / "a.parquet") for c in command]
    r = subprocess.run([sys.executable, "-m", "cluster.cli", *command], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert says in r.stderr and "Traceback" not in r.stderr


def test_stages_with_their_data_pass_the_check(tmp_path):
    from cluster.config import check_train_config

    t, s = tmp_path / "t.parquet", tmp_path / "s.parquet"
    t.write_bytes(b"")
    s.write_bytes(b"")
    check_train_config(load_config(None, []))  # the demo: its model and data are made for it
    check_train_config(load_config(None, [f"data.train={t}", f"data.sft={s}"]))
    check_train_config(load_config(None, [f"data.train={t}", "train.stages=[grpo]"]))
    check_train_config(load_config(None, ["model.path=Qwen/Qwen2.5-VL-3B-Instruct"]))  # a hub id, for clusters online
    check_train_config(load_config(None, [f"data.train={t}", "data.sft=/nowhere.parquet", "train.stages=[grpo]"]))


def test_the_config_names_every_template_teacher_and_tiny_shape_that_exists():
    import typing

    from rollout.demo.config import DemoConfig
    from rollout.demo.template_teacher import TEACHERS
    from rollout.demo.tiny_model import SHAPES

    hints = typing.get_type_hints(DemoConfig)
    assert set(typing.get_args(hints["teacher"])) == set(TEACHERS)
    assert set(typing.get_args(hints["tiny_size"])) == set(SHAPES)


def test_every_shipped_config_loads(tmp_path):
    from pathlib import Path

    for path in sorted(Path("configs").glob("*.yaml")):
        if path.name != "serve.yaml":  # a Ray Serve deploy file, not a qthink config
            load_config(path)


def test_a_model_dir_brings_the_settings_it_was_trained_with_and_the_user_still_wins(tmp_path):
    from cluster.config import write_model_settings

    trained = load_config(None, ["data.prompt_style=short", "reward.preset=vqathinker", "data.num_frames=8"])
    write_model_settings(trained, tmp_path)
    assert load_config(None, [], model_dir=tmp_path).data.prompt_style == "short"  # not the paper prompt
    assert load_config(None, [], model_dir=tmp_path).reward.preset == "vqathinker"
    told = load_config(None, ["data.prompt_style=paper"], model_dir=tmp_path)
    assert told.data.prompt_style == "paper" and told.data.num_frames == 8
    assert load_config(None, [], model_dir=tmp_path / "elsewhere").data.prompt_style == "paper"
