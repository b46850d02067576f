#!/bin/bash
# usage: run.sh NAME overrides...  (GRPO from the SFT checkpoint of /work/exp/sft0)
name=$1; shift
d=/work/exp/$name; rm -rf $d; mkdir -p $d/checkpoints
cp -r /work/exp/sft0/checkpoints/step_0000800 $d/checkpoints/
cp -r /work/exp/sft0/eval /work/exp/sft0/metrics.jsonl /work/exp/sft0/batches.jsonl $d/
cd /work/wip && RAY_AUTH_MODE=disabled OMP_WAIT_POLICY=PASSIVE PYTHONPATH=/work/wip timeout 1500 /work/main/.venv/bin/python -m cluster.cli train --config configs/demo-cpu.yaml train.output_dir=$d train.keep_last=3 logging.progress_bar=false "$@" --resume > $d.log 2>&1
echo rc=$? >> $d.log
grep -A4 "held-out  " $d.log
