"""Fixtures of the `qthink train` subprocess tests: one tiny model and synthetic set for the session, and
no run left behind by a test that failed while its run was going."""

import os
import signal

import pytest

from train_runs import qthink


@pytest.fixture(scope="session")
def shared(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    return {"tiny": root / "tiny", "synth": root / "synth"}


@pytest.fixture
def start():
    """`start(*cli_args)` runs qthink; whatever is still running at the test's end is killed with its Ray."""
    procs = []

    def run(*args):
        procs.append(qthink(*args))
        return procs[-1]

    yield run
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
