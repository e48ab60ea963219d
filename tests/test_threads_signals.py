"""Helper threads block SIGINT, so Ctrl-C always lands on the main thread and interrupts a blocked model call.

A process-wide signal may be delivered to any thread that does not block it; if a helper thread took it, a
main thread blocked in a socket read would not see KeyboardInterrupt until the read returned.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from codeloop import CodeAgent
from codeloop.testing import ScriptedModel


def _threads_accepting_sigint() -> list[int]:
    """Thread ids (other than the main thread) that do not block SIGINT."""
    main_tid = threading.main_thread().native_id
    accepting = []
    for tid in os.listdir("/proc/self/task"):
        if int(tid) == main_tid:
            continue
        try:
            with open(f"/proc/self/task/{tid}/status") as status_file:
                status = status_file.read()
        except (FileNotFoundError, ProcessLookupError):  # the thread ended while we looked
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        blocked = int(fields["SigBlk"].strip(), 16)
        if not blocked & (1 << (signal.SIGINT - 1)):
            accepting.append(int(tid))
    return accepting


@pytest.mark.parametrize("executor", ["local", "sandbox"])
def test_codeloop_threads_leave_sigint_to_the_main_thread(executor: str) -> None:
    before = set(_threads_accepting_sigint())  # pytest's own threads, if any
    agent = CodeAgent(
        model=ScriptedModel(["```python\nx = 1\nprint(x)\n```", "```python\nfinal_answer(x)\n```"]),
        executor=executor,
        verbosity_level=0,
        stream_outputs=True,  # also starts the code-running helper thread
    )
    try:
        assert agent.run("threads") == 1
        new = [tid for tid in _threads_accepting_sigint() if tid not in before]
        assert new == [], f"threads started by codeloop accept SIGINT: {new}"
    finally:
        agent.close()
