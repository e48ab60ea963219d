"""A child process for the resume tests: runs (or resumes) a scripted 10-step CodeAgent run, journaled to a file.

    python -m tests.resume_child run|resume FOLDER EXECUTOR [RUN_ID]

(or `main([...], env, out)` in a process forked by the tests' forkserver, which saves the import per case).

Environment: KILL_AFTER_APPENDS=n kills this process with SIGKILL right after its n-th journal append (an effect
boundary: the entry is durable, the next step has not happened); KILL_IN_TOOL=n kills it inside the n-th tool
call, after the tool's side effect and before its result is journaled. Side effects (tool calls, model calls) are
appended to files in FOLDER, so the parent can count them across processes. The answer is printed as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from codeloop import CodeAgent, tool
from codeloop.journal import FileJournal, JournalEntry
from codeloop.testing import ScriptedModel

STEPS = 10


class KillingJournal(FileJournal):
    """A FileJournal whose process dies (SIGKILL) right after the n-th append this process makes."""

    appends = 0

    def append(self, entry: JournalEntry) -> None:
        super().append(entry)
        KillingJournal.appends += 1
        if KillingJournal.appends == int(os.environ.get("KILL_AFTER_APPENDS", "0")):
            os.kill(os.getpid(), signal.SIGKILL)


def log(folder: Path, name: str, line: str) -> None:
    with open(folder / name, "a") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def build(folder: Path, executor: str) -> CodeAgent:
    tool_calls = {"n": 0}

    @tool(idempotent=True)
    def deposit(account: str, amount: int) -> int:
        """Deposit money and return the new balance (a side effect the test counts).

        Args:
            account: the account name
            amount: how much
        """
        log(folder, "deposits.log", f"{account} {amount}")
        tool_calls["n"] += 1
        if tool_calls["n"] == int(os.environ.get("KILL_IN_TOOL", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
        return amount * 10

    @tool
    def send_email(to: str) -> str:
        """Send an email (not idempotent).

        Args:
            to: the recipient
        """
        log(folder, "emails.log", to)
        return f"sent to {to}"

    def script(request: Any) -> str:
        step = sum(1 for m in request.messages if m.role == "assistant")
        log(folder, "model.log", str(step))
        last = request.messages[-1].text
        if "may or may not have happened" in last:
            return "Thought: unsure, stop.\n```python\nfinal_answer('unsure')\n```"
        if step == 0:
            return "Thought: start.\n```python\nbalance = 0\nhistory = []\n```"
        if step <= STEPS - 1:
            code = f"got = deposit('acct', {step})\nbalance += got\nhistory.append(got)\nprint(balance)"
            if step == 5 and os.environ.get("EMAIL_STEP"):
                code += "\nsend_email('boss')"
            return f"Thought: step {step}.\n```python\n{code}\n```"
        return "Thought: done.\n```python\nfinal_answer({'balance': balance, 'history': history})\n```"

    return CodeAgent(
        [deposit, send_email],
        ScriptedModel(script),
        executor=executor,
        verbosity_level=0,
        max_steps=STEPS + 2,
        journal=KillingJournal.factory(folder / "journal"),
        compaction=None,  # the script counts the assistant turns in the request; condensed old steps hide them
    )


def main(argv: list[str], env: dict[str, str] | None = None, out: str | None = None) -> None:
    """Run or resume; print the outcome as JSON (or write it to `out`). `env` is added to os.environ first."""
    os.environ.update(env or {})
    mode, folder, executor = argv[0], Path(argv[1]), argv[2]
    agent = build(folder, executor)
    with agent:
        if mode == "run":
            result = agent.run("Deposit 1..9 and report.", return_full_result=True)
        else:
            result = agent.resume(argv[3], return_full_result=True)
    text = json.dumps({"run_id": result.run_id, "state": result.state, "answer": result.output})
    if out is None:
        print(text)
    else:
        Path(out).write_text(text)


if __name__ == "__main__":
    main(sys.argv[1:])
