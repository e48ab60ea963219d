"""A failing step keeps the worker and its variables; only a step that kills or wedges the worker restarts it,
and then the error says so (issue 8 §2.1).

Runs the real worker in both isolation modes: the reduced "subprocess" fallback (same worker, rlimits and seccomp
filter, always available on Linux) and bubblewrap (skipped, saying why, where it cannot run).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.sandbox_support import needs_bwrap

from codeloop.errors import ExecutionError
from codeloop.executors import SandboxExecutor

ISOLATIONS = [
    pytest.param("subprocess", id="subprocess"),
    pytest.param("bubblewrap", id="bubblewrap", marks=needs_bwrap),
]

# Each step fails inside the worker without harming it, the way a model's code fails every few steps.
FAILING_STEPS = {
    "syntax_error": ("def f(:\n    pass", "SyntaxError"),
    "name_error": ("print(undefined_name)", "NameError"),
    "index_error": ("data[10]", "IndexError"),
    "zero_division": ("data[0] / 0", "ZeroDivisionError"),
    "fork_refused": ("import os\nos.fork()", "PermissionError"),
    "one_oversized_allocation": ("blob = bytearray(4 * 1024**3)", "MemoryError"),
    "thread_limit": (
        "import threading\nstop = threading.Event()\ntry:\n    for _ in range(100_000):\n"
        "        threading.Thread(target=stop.wait).start()\nfinally:\n    stop.set()",
        "can't start new thread",
    ),
    "file_past_the_tmpfs_size": (
        "import os, tempfile\nwith open(os.path.join(tempfile.gettempdir(), 'big.bin'), 'wb') as out:\n"
        "    for _ in range(64):\n        out.write(bytes(2**20))",
        "OSError",
    ),
}


@pytest.fixture(scope="module", params=ISOLATIONS)
def executor(request: pytest.FixtureRequest) -> Iterator[SandboxExecutor]:
    # One worker for every case: state must survive a whole series of failures, not just one.
    # no step here should time out: 60 s leaves room for a loaded machine
    with SandboxExecutor(isolation=request.param, timeout=60, max_memory_mb=512, tmpfs_mb=8) as shared:
        yield shared


@pytest.mark.parametrize("case", sorted(FAILING_STEPS))
def test_a_failing_step_keeps_the_worker_and_its_variables(executor: SandboxExecutor, case: str) -> None:
    code, expected = FAILING_STEPS[case]
    restarts = executor.restarts
    executor.run(f"data = [1, 2, 3]\n{case} = 'defined before the failure'")
    with pytest.raises(ExecutionError) as caught:
        executor.run(code)
    assert expected in str(caught.value)
    assert "fresh worker" not in str(caught.value) and "lost" not in str(caught.value)
    assert executor.run(f"print(sum(data))\n{case}").output == "defined before the failure"
    assert executor.restarts == restarts


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_the_issue_repro_keeps_data_after_an_index_error(isolation: str) -> None:
    with SandboxExecutor(isolation=isolation) as sandbox:
        sandbox.run("data = [1, 2, 3]")
        with pytest.raises(ExecutionError, match="IndexError"):
            sandbox.run("data[10]")
        assert sandbox.run("print(sum(data))").logs == "6\n"


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_step_that_kills_its_worker_restarts_it_and_says_what_was_lost(isolation: str) -> None:
    with SandboxExecutor(isolation=isolation, timeout=3) as sandbox:  # room for the steps that must finish
        sandbox.send_variables({"given": 5})
        sandbox.run("mine = 1")
        with pytest.raises(ExecutionError) as caught:
            sandbox.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        message = str(caught.value)
        assert "died" in message and "SIGKILL" in message and "fresh worker" in message and "lost" in message
        assert sandbox.run("(given, 'mine' in globals())").output == (5, False)
        sandbox.run("mine = 2")
        with pytest.raises(ExecutionError) as caught:
            sandbox.run("while True:\n    pass")
        assert "time limit of 3 seconds" in str(caught.value) and "restarted" in str(caught.value)
        assert sandbox.run("(given, 'mine' in globals())").output == (5, False)
        assert sandbox.restarts == 2


# --- the message size limit (issue 8 §2.7) ----------------------------------------------------------------------


@pytest.fixture
def small_limit() -> Iterator[SandboxExecutor]:
    with SandboxExecutor(isolation="subprocess", timeout=20, max_message_mb=1) as executor:
        executor.send_tools({"big": lambda: "x" * (2 * 2**20), "length": len})
        executor.run("kept = 'still here'")
        yield executor


def test_a_tool_result_over_the_limit_is_a_clear_error_and_the_worker_survives(
    small_limit: SandboxExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ExecutionError) as caught:
        small_limit.run("result = big()")
    message = str(caught.value)
    assert "MessageTooLarge: the result of tool 'big' is 2.0 MiB, over the 1 MiB limit" in message
    assert "max_message_mb" in message and "_ProtocolBroken" not in message and "RuntimeError" not in message
    assert any("the result of tool 'big' is 2.0 MiB" in record.getMessage() for record in caplog.records)
    assert small_limit.run("kept").output == "still here" and small_limit.restarts == 0


def test_data_from_the_worker_over_the_limit_is_refused_without_a_restart(
    small_limit: SandboxExecutor,
) -> None:
    small_limit.run("blob = 'y' * (2 * 2**20)")
    with pytest.raises(ExecutionError, match="value of the last expression is 2.0 MiB, over the 1 MiB limit"):
        small_limit.run("blob")
    with pytest.raises(ExecutionError, match="MessageTooLarge: the arguments of this tool call is 2.0 MiB"):
        small_limit.run("length(blob)")
    with pytest.raises(ExecutionError, match="the final answer is 2.0 MiB"):
        small_limit.run("final_answer(blob)")
    with pytest.raises(
        ExecutionError, match="variables could not be returned.*2.0 MiB, over the 1 MiB limit"
    ):
        small_limit.get_variables(["blob"])
    assert (
        small_limit.run("len(blob), kept").output == (2 * 2**20, "still here") and small_limit.restarts == 0
    )


def test_variables_over_the_limit_are_refused_by_name_and_many_small_ones_still_travel(
    small_limit: SandboxExecutor,
) -> None:
    from codeloop.executors.worker.protocol import MessageTooLarge

    with pytest.raises(MessageTooLarge, match="variable 'huge' is 2.0 MiB, over the 1 MiB limit"):
        small_limit.send_variables({"huge": "z" * (2 * 2**20)})
    parts = {f"part{i}": "p" * 300_000 for i in range(5)}  # 1.5 MB together: more than one message
    small_limit.send_variables(parts)
    assert (
        small_limit.run("sum(len(v) for k, v in globals().items() if k.startswith('part'))").output
        == 1_500_000
    )
    assert small_limit.run("kept").output == "still here" and small_limit.restarts == 0


def test_a_raised_limit_holds_on_both_sides() -> None:
    with SandboxExecutor(isolation="subprocess", timeout=30, max_message_mb=80) as executor:
        executor.send_tools({"big": lambda: "x" * (70 * 2**20)})  # over the default 64 MiB
        assert executor.run("len(big())").output == 70 * 2**20


def test_a_worker_lost_between_steps_is_announced_at_the_next_step() -> None:
    import os
    import signal

    with SandboxExecutor(isolation="subprocess", timeout=60) as sandbox:
        sandbox.run("mine = 1")
        os.kill(sandbox.run("import os\nos.getpid()").output, signal.SIGKILL)
        sandbox.send_tools({"ping": lambda: "pong"})  # finds the worker gone and replaces it
        result = sandbox.run("print(ping(), 'mine' in globals())")
        assert result.logs.startswith(
            "[Before this step the worker stopped (killed by SIGKILL) and was restarted"
        )
        assert "lost" in result.logs and result.logs.endswith("pong False\n")
        assert sandbox.run("print('quiet')").logs == "quiet\n"  # said once
