#!/bin/bash
# usage: g.sh NAME overrides...  GRPO only, from the SFT model sft0/final; "untrained" row = the SFT model
name=$1; shift
R=~/.cache/qthink/synthetic/seed0-3240x90
d=/work/exp/$name; rm -rf $d
cd /work/wip && RAY_AUTH_MODE=disabled OMP_WAIT_POLICY=PASSIVE PYTHONPATH=/work/wip timeout 2400 /work/main/.venv/bin/python -m cluster.cli train --config configs/demo-cpu.yaml train.output_dir=$d train.keep_last=3 logging.progress_bar=false model.path=/work/exp/sft0/final train.stages=[grpo] data.train=$R/sft25600.parquet data.sft=$R/train_sft_plus25600.parquet "data.test=[$R/test.parquet]" "$@" > $d.log 2>&1
echo rc=$? >> $d.log
grep -A4 "held-out  " $d.log
