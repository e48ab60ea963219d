"""ModalExecutor: the transport logic against the real worker (a fake Modal sandbox whose entrypoint is the
worker run as a local subprocess, with Modal's stdin writer and line-iterated text stdout), and real Modal behind
CODELOOP_MODAL_TESTS=1.

The fake tests check what codeloop does (the entrypoint it asks for, framing over stdin.write/drain and stdout
lines, restarts and termination); they do not test Modal.
"""

from __future__ import annotations

import os

import pytest
from tests.transport_fakes import FakeModalSandbox, exercise_worker

from codeloop.errors import ExecutionError
from codeloop.executors import ModalExecutor
from codeloop.executors.worker.bundle import BOOTSTRAP


@pytest.fixture
def sandboxes() -> list[FakeModalSandbox]:
    return []


def make(sandboxes: list[FakeModalSandbox], **kwargs: object) -> ModalExecutor:
    def factory(*command: str) -> FakeModalSandbox:
        sandbox = FakeModalSandbox(*command)
        sandboxes.append(sandbox)
        return sandbox

    return ModalExecutor(sandbox_factory=factory, **kwargs)  # type: ignore[arg-type]


def test_the_worker_runs_over_the_sandbox_stdio(sandboxes: list[FakeModalSandbox]) -> None:
    with make(sandboxes, timeout=5) as executor:
        exercise_worker(executor)
        assert sandboxes[0].worker.command == ["python3", "-I", "-c", BOOTSTRAP]
    assert sandboxes[0].terminated


def test_a_timeout_terminates_the_sandbox_and_starts_another(sandboxes: list[FakeModalSandbox]) -> None:
    with make(sandboxes, timeout=1) as executor:
        with pytest.raises(ExecutionError, match="time limit of 1 seconds"):
            executor.run("while True:\n    pass")
        assert sandboxes[0].terminated
        assert executor.run("5").output == 5 and len(sandboxes) == 2
    assert all(s.terminated for s in sandboxes)


def test_a_dead_worker_is_reported_with_its_exit_status(sandboxes: list[FakeModalSandbox]) -> None:
    with make(sandboxes, timeout=5) as executor:
        with pytest.raises(ExecutionError, match="died.*exited with status 4"):
            executor.run("import os\nos._exit(4)")
        assert executor.run("'back'").output == "back"


@pytest.mark.skipif(
    os.environ.get("CODELOOP_MODAL_TESTS") != "1",
    reason="real Modal: set CODELOOP_MODAL_TESTS=1 (and a Modal token)",
)
def test_real_modal() -> None:
    with ModalExecutor(timeout=10) as executor:
        exercise_worker(executor)
        with pytest.raises(ExecutionError, match="time limit"):
            executor.run("while True: pass")
        assert executor.run("1").output == 1
