#!/bin/bash
# resume from sft0's SFT checkpoint; GRPO on the fresh 25,600-image set
n=$1; shift
./run.sh $n data.train=/root/.cache/qthink/synthetic/seed0-3240x90/sft25600.parquet data.sft=/root/.cache/qthink/synthetic/seed0-3240x90/train_sft_plus25600.parquet "data.test=[/root/.cache/qthink/synthetic/seed0-3240x90/test.parquet]" "$@"
