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
    with SandboxExecutor(isolation=request.param, timeout=10, max_memory_mb=512, tmpfs_mb=8) as shared:
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
    with SandboxExecutor(isolation=isolation, timeout=1) as sandbox:
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
        assert "time limit of 1 seconds" in str(caught.value) and "restarted" in str(caught.value)
        assert sandbox.run("(given, 'mine' in globals())").output == (5, False)
        assert sandbox.restarts == 2
