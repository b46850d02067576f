# qthink: `make test` (install the CPU stack into .venv if needed, then run every test),
# `make demo` (the embedded pipeline on a tiny model; grows with the pipeline issue).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test test-fast demo tiny-model clean

setup:
	bash scripts/setup_env.sh

# pytest exits 5 when a selection collects no tests: say so and do not fail the run on it.
test: setup
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; exit 0; fi; exit $$rc

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

tiny-model: setup
	$(VENV)/bin/qthink make-tiny-model --out runs/tiny-model

demo: setup
	$(VENV)/bin/qthink make-tiny-model --out runs/tiny-model
	$(VENV)/bin/qthink config show

clean:
	rm -rf $(VENV) runs .pytest_cache
