"""E2BExecutor: the transport logic against the real worker (a fake E2B sandbox whose background command is the
worker run as a local subprocess, with text stdin/stdout like the SDK's), and real E2B behind CODELOOP_E2B_TESTS=1.

The fake tests check what codeloop does (the command it starts, text framing over send_stdin and the output
iterator, restarts and cleanup); they do not test E2B.
"""

from __future__ import annotations

import os
import shlex

import pytest
from tests.transport_fakes import FakeE2BSandbox, exercise_worker

from codeloop.errors import ExecutionError
from codeloop.executors import E2BExecutor
from codeloop.executors.worker.bundle import BOOTSTRAP


@pytest.fixture
def sandboxes() -> list[FakeE2BSandbox]:
    return []


def make(sandboxes: list[FakeE2BSandbox], **kwargs: object) -> E2BExecutor:
    def factory() -> FakeE2BSandbox:
        sandbox = FakeE2BSandbox()
        sandboxes.append(sandbox)
        return sandbox

    return E2BExecutor(sandbox_factory=factory, **kwargs)  # type: ignore[arg-type]


def test_the_worker_runs_over_the_command_stdio(sandboxes: list[FakeE2BSandbox]) -> None:
    with make(sandboxes, timeout=5) as executor:
        exercise_worker(executor)
        command = sandboxes[0].handles[0].worker.command
        assert command == shlex.split(shlex.join(["python3", "-I", "-c", BOOTSTRAP]))
        assert executor.run("'naïve ✓ text'").output == "naïve ✓ text"
    assert sandboxes[0].killed


def test_a_timeout_kills_the_cloud_sandbox_and_starts_another(sandboxes: list[FakeE2BSandbox]) -> None:
    with make(sandboxes, timeout=1) as executor:
        executor.run("kept = 1")
        with pytest.raises(ExecutionError, match="time limit of 1 seconds"):
            executor.run("while True:\n    pass")
        assert sandboxes[0].killed
        assert executor.run("'kept' in globals()").output is False
        assert len(sandboxes) == 2 and not sandboxes[1].killed
    assert all(s.killed for s in sandboxes)


def test_a_dead_worker_is_reported_and_replaced(sandboxes: list[FakeE2BSandbox]) -> None:
    with make(sandboxes, timeout=5) as executor:
        with pytest.raises(ExecutionError, match="died"):
            executor.run("import os\nos._exit(1)")
        assert executor.run("3 * 3").output == 9


def test_a_failure_while_starting_the_command_kills_the_sandbox() -> None:
    created: list[FakeE2BSandbox] = []

    def factory() -> FakeE2BSandbox:
        sandbox = FakeE2BSandbox()
        created.append(sandbox)

        def broken(*args: object, **kwargs: object) -> None:
            raise KeyboardInterrupt

        sandbox.commands.run = broken  # type: ignore[method-assign]
        return sandbox

    executor = E2BExecutor(sandbox_factory=factory)
    with pytest.raises(KeyboardInterrupt):
        executor.run("1")
    assert created[0].killed
    executor.close()


@pytest.mark.skipif(
    os.environ.get("CODELOOP_E2B_TESTS") != "1" or not os.environ.get("E2B_API_KEY"),
    reason="real E2B: set CODELOOP_E2B_TESTS=1 and E2B_API_KEY",
)
def test_real_e2b() -> None:
    with E2BExecutor(timeout=10, template=os.environ.get("CODELOOP_E2B_TEMPLATE")) as executor:
        exercise_worker(executor)
        with pytest.raises(ExecutionError, match="time limit"):
            executor.run("while True: pass")
        assert executor.run("1").output == 1
