"""Resuming a run from its journal, in one process: what is answered from the record, and what is refused."""

from __future__ import annotations

import asyncio
import errno
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from codeloop import CodeAgent, ToolCallingAgent, tool
from codeloop.durable import ResumeError, RunAlreadyFinished, RunLeased
from codeloop.journal import FileJournal, JournalEntry, MemoryJournal
from codeloop.models.base import ChatMessage, ToolCall
from codeloop.testing import ScriptedModel


def _counting_tools() -> tuple[list[Any], list[tuple[str, Any]]]:
    calls: list[tuple[str, Any]] = []

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: the first
            b: the second
        """
        calls.append(("add", (a, b)))
        return a + b

    @tool
    def flaky(n: int) -> int:
        """Always fails.

        Args:
            n: anything
        """
        calls.append(("flaky", n))
        raise ValueError(f"flaky failed on {n}")

    return [add, flaky], calls


def _code_script(fail_on: set[int]) -> Any:
    """Step k adds k to `total`; step 2 catches a tool's ValueError; step 4 answers. Fails on the listed calls."""
    asked = {"n": 0}

    def script(request: Any) -> str:
        asked["n"] += 1
        if asked["n"] in fail_on:
            raise ConnectionError("network down")
        step = sum(1 for m in request.messages if m.role == "assistant")
        if step == 0:
            return "Thought: start.\n```python\ntotal = add(0, 1)\n```"
        if step == 2:
            return "Thought: try.\n```python\ntry:\n    flaky(2)\nexcept ValueError as e:\n    note = str(e)\n```"
        if step < 4:
            return f"Thought: add.\n```python\ntotal = add(total, {step + 1})\n```"
        return "Thought: done.\n```python\nfinal_answer((total, note))\n```"

    return script


def test_resume_after_a_failed_model_call_reuses_every_completed_call() -> None:
    tools, calls = _counting_tools()
    model = ScriptedModel(_code_script(fail_on={4}))
    agent = CodeAgent(tools, model, executor="local", verbosity_level=0)
    first = agent.run("Add.", return_full_result=True)
    assert first.state == "error" and "network down" in (first.error or "")
    assert calls == [("add", (0, 1)), ("add", (1, 2)), ("flaky", 2)]
    result = agent.resume(first.run_id, return_full_result=True)
    assert (result.state, result.output) == ("success", (7, "flaky failed on 2"))
    assert result.run_id == first.run_id
    # the three completed tool calls were answered from the journal; the failed model call (4th) was retried
    assert calls == [("add", (0, 1)), ("add", (1, 2)), ("flaky", 2), ("add", (3, 4))]
    assert len(model.requests) == 5 + 1


def test_resuming_a_finished_run_is_refused_with_a_clear_message() -> None:
    tools, _ = _counting_tools()
    agent = CodeAgent(tools, ScriptedModel(_code_script(set())), executor="local", verbosity_level=0)
    run_id = agent.run("Add.", return_full_result=True).run_id
    with pytest.raises(RunAlreadyFinished, match=f"run {run_id} already finished \\(state 'success'\\)"):
        agent.resume(run_id)


def test_resuming_an_unknown_run_says_what_resume_needs() -> None:
    tools, _ = _counting_tools()
    agent = CodeAgent(tools, ScriptedModel(_code_script(set())), executor="local", verbosity_level=0)
    with pytest.raises(ResumeError, match="no journal for run 'nope'"):
        agent.resume("nope")


def _failed_run(folder: Path) -> str:
    tools, _ = _counting_tools()
    agent = CodeAgent(
        tools,
        ScriptedModel(_code_script({3})),
        executor="local",
        verbosity_level=0,
        journal=FileJournal.factory(folder),
    )
    result = agent.run("Add.", return_full_result=True)
    assert result.state == "error"
    return result.run_id


def test_a_second_resumer_is_refused_by_the_lease(tmp_path: Path) -> None:
    run_id = _failed_run(tmp_path)
    assert (
        FileJournal(tmp_path, run_id).acquire_lease("otherhost:123:abc", 60) is None
    )  # a live resumer elsewhere
    tools, calls = _counting_tools()
    agent = CodeAgent(
        tools,
        ScriptedModel(_code_script(set())),
        executor="local",
        verbosity_level=0,
        journal=FileJournal.factory(tmp_path),
    )
    with pytest.raises(RunLeased, match="otherhost:123:abc"):
        agent.resume(run_id)
    assert calls == []  # refused before anything ran


def test_the_lease_of_a_dead_process_on_this_machine_is_taken_over(tmp_path: Path) -> None:
    import socket

    run_id = _failed_run(tmp_path)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    holder = f"{socket.gethostname()}:{int(gone.stdout)}:dead"
    assert FileJournal(tmp_path, run_id).acquire_lease(holder, 600) is None
    tools, _ = _counting_tools()
    agent = CodeAgent(
        tools,
        ScriptedModel(_code_script(set())),
        executor="local",
        verbosity_level=0,
        journal=FileJournal.factory(tmp_path),
    )
    assert agent.resume(run_id) == (7, "flaky failed on 2")


def test_a_replay_whose_code_makes_other_tool_calls_stops_naming_the_step() -> None:
    tools, calls = _counting_tools()
    asked = {"n": 0}

    def script(request: Any) -> str:
        asked["n"] += 1
        if asked["n"] == 2:
            raise ConnectionError("network down")
        return "Thought: random.\n```python\nimport random\nx = add(random.randrange(10**12), 1)\n```"

    agent = CodeAgent(tools, ScriptedModel(script), executor="local", verbosity_level=0)
    first = agent.run("Add.", return_full_result=True)
    journal = agent._durable.open(first.run_id)
    before = journal.entries()
    result = agent.resume(first.run_id, return_full_result=True)
    assert result.state == "error"
    assert "RunDiverged" in (result.error or "") and "replay of step 1 diverged" in (result.error or "")
    assert len(calls) == 1  # the replay made no call for real
    assert journal.entries() == before  # and left the record as it was


def test_tool_calling_agent_parallel_calls_are_not_repeated_on_resume() -> None:
    tools, calls = _counting_tools()
    asked = {"n": 0}

    def script(request: Any) -> ChatMessage:
        asked["n"] += 1
        if asked["n"] == 2:
            raise ConnectionError("network down")
        if not any(m.role == "tool" or "Observation" in m.text for m in request.messages[2:]):
            pair = [ToolCall("c1", "add", {"a": 1, "b": 2}), ToolCall("c2", "add", {"a": 3, "b": 4})]
            return ChatMessage("assistant", "", tool_calls=pair)
        return ChatMessage(
            "assistant", "", tool_calls=[ToolCall("c3", "final_answer", {"answer": "3 and 7"})]
        )

    agent = ToolCallingAgent(tools, ScriptedModel(script), verbosity_level=0)
    first = agent.run("Add twice.", return_full_result=True)
    assert first.state == "error" and sorted(calls) == [("add", (1, 2)), ("add", (3, 4))]
    assert agent.resume(first.run_id) == "3 and 7"
    assert sorted(calls) == [("add", (1, 2)), ("add", (3, 4))]


def test_aresume_continues_a_run_like_resume() -> None:
    tools, calls = _counting_tools()
    agent = CodeAgent(tools, ScriptedModel(_code_script(fail_on={3})), executor="local", verbosity_level=0)
    first = asyncio.run(agent.arun("Add.", return_full_result=True))
    assert first.state == "error"
    assert asyncio.run(agent.aresume(first.run_id)) == (7, "flaky failed on 2")
    assert [c for c in calls if c[0] == "add"] == [("add", (0, 1)), ("add", (1, 2)), ("add", (3, 4))]


class _FullDisk(MemoryJournal):
    """A journal whose disk fills up at the n-th append."""

    def __init__(self, run_id: str, fail_at: int) -> None:
        super().__init__(run_id)
        self.fail_at = fail_at
        self.count = 0

    def append(self, entry: JournalEntry) -> None:
        self.count += 1
        if self.count == self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().append(entry)


def test_a_full_disk_stops_the_run_with_an_error_keeping_what_was_recorded() -> None:
    tools, calls = _counting_tools()
    journals: dict[str, _FullDisk] = {}

    def factory(run_id: str) -> _FullDisk:
        return journals.setdefault(run_id, _FullDisk(run_id, fail_at=9))  # recording step 2's model reply

    agent = CodeAgent(
        tools, ScriptedModel(_code_script(set())), executor="local", verbosity_level=0, journal=factory
    )
    first = agent.run("Add.", return_full_result=True)
    assert first.state == "error" and "No space left on device" in (first.error or "")
    assert len(first.steps) >= 2  # the steps taken before are kept in the result
    journal = journals[first.run_id]
    # run, step 1's model call, code and tool call are recorded; step 2's model call never got its "done"
    assert [(e.kind, e.status) for e in journal.entries()] == [
        ("run", "done"),
        ("model", "done"),
        ("code", "done"),
        ("tool_in_code", "done"),
        ("model", "started"),
    ]
    journal.fail_at = 0  # space freed: the run resumes from its record
    assert agent.resume(first.run_id) == (7, "flaky failed on 2")
    assert calls.count(("add", (0, 1))) == 1


def test_decisions_given_on_resume_are_kept_for_every_later_resume_and_unknown_ids_are_refused() -> None:
    from types import SimpleNamespace

    from codeloop import events as ev
    from codeloop.durable import Durability, pending_approvals

    journal = MemoryJournal("run3")
    first = Durability(lambda run_id: journal)
    recorder = first.begin("run3", {})
    recorder.start_run("task", 5, [], {})
    pending = [{"call_id": "1.2", "tool": "wire_money", "arguments": {"amount": 5}}]
    paused = SimpleNamespace(state="awaiting_approval", pending=pending, error=None)
    recorder.observe(ev.RunFinished(paused))  # type: ignore[arg-type]  # the run pauses (and lets its lease go)
    assert pending_approvals(journal) == pending
    assert [e.kind for e in journal.entries()] == [
        "run"
    ]  # a pause takes no seq: a replay asks for the same effects

    tools, _ = _counting_tools()
    agent = CodeAgent(tools, ScriptedModel(_code_script(set())), executor="local", verbosity_level=0)
    agent._durable = Durability(lambda run_id: journal)
    with pytest.raises(
        ValueError, match="unknown call id 9.9 for run run3; the pending calls are: 1.2: wire_money"
    ):
        agent.resume("run3", approvals={"9.9": True})

    second = Durability(lambda run_id: journal)
    second.prepare_resume("run3")
    assert second.record_decisions({"1.2": "too much"}) == {"1.2": "too much"}
    assert pending_approvals(journal) == []
    second.cancel_resume()
    third = Durability(lambda run_id: journal)
    third.prepare_resume("run3")
    assert third.record_decisions({}) == {"1.2": "too much"}  # a later resume (another crash) still has it
    third.cancel_resume()


def test_divergence_inside_in_flight_code_stops_the_run_even_if_the_code_catches_it() -> None:
    tools, calls = _counting_tools()
    code = "import random\ntry:\n    add(random.randrange(10**12), 1)\nexcept Exception as e:\n    caught = e\nx = 1"
    replies: list[Any] = [f"```python\n{code}\n```", ConnectionError("network down")]

    def script(request: Any) -> str:
        reply = replies.pop(0) if replies else "```python\nfinal_answer(x)\n```"
        if isinstance(reply, Exception):
            raise reply
        return str(reply)

    agent = CodeAgent(tools, ScriptedModel(script), executor="local", verbosity_level=0)
    first = agent.run("Add.", return_full_result=True)
    assert first.state == "error" and len(calls) == 1
    journal = agent._durable.open(first.run_id)
    code_entry = next(e for e in journal.entries() if e.kind == "code")
    # as if the process had died while this code ran: its call is recorded, the code's end is not
    journal.append(JournalEntry(code_entry.seq, "code", code_entry.key, "started"))
    before = journal.entries()
    result = agent.resume(first.run_id, return_full_result=True)
    assert result.state == "error" and f"diverged at journal entry {code_entry.seq + 1}" in (
        result.error or ""
    )
    assert len(calls) == 1 and journal.entries() == before  # nothing ran for real, nothing was overwritten


def test_async_tool_calling_run_with_an_async_tool_resumes_without_repeating_the_call() -> None:
    ran: list[int] = []

    @tool
    async def double(n: int) -> int:
        """Double a number.

        Args:
            n: the number
        """
        ran.append(n)
        return 2 * n

    asked = {"n": 0}

    def script(request: Any) -> ChatMessage:
        asked["n"] += 1
        if asked["n"] == 2:
            raise ConnectionError("network down")
        if any(m.role == "tool" for m in request.messages):
            return ChatMessage(
                "assistant", "", tool_calls=[ToolCall("c2", "final_answer", {"answer": "done"})]
            )
        return ChatMessage("assistant", "", tool_calls=[ToolCall("c1", "double", {"n": 21})])

    agent = ToolCallingAgent([double], ScriptedModel(script), verbosity_level=0)
    first = asyncio.run(agent.arun("Double.", return_full_result=True))
    assert first.state == "error" and ran == [21]
    journal = agent._durable.open(first.run_id)
    assert [(e.kind, e.result) for e in journal.entries() if e.kind == "tool"] == [("tool", 42)]
    assert asyncio.run(agent.aresume(first.run_id)) == "done"
    assert ran == [21]


def test_a_run_whose_expired_lease_was_taken_over_stops_instead_of_running_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from codeloop import durable

    monkeypatch.setattr(durable, "LEASE_SECONDS", 0.3)
    taken: list[str] = []

    @tool
    def slow(n: int) -> int:
        """Take a while; meanwhile another process takes the run over.

        Args:
            n: anything
        """
        time.sleep(0.4)  # longer than the lease: it expires
        (path,) = tmp_path.glob("*.jsonl")
        assert FileJournal(tmp_path, path.stem).acquire_lease("otherhost:1:x", 60) is None
        taken.append(path.stem)
        return n

    replies = ["```python\nslow(1)\n```", "```python\nslow(2)\n```", "```python\nfinal_answer(3)\n```"]
    agent = CodeAgent(
        [slow],
        ScriptedModel(replies),
        executor="local",
        verbosity_level=0,
        journal=FileJournal.factory(tmp_path),
    )
    result = agent.run("Go.", return_full_result=True)
    assert taken and result.state == "error"
    assert "taken over by otherhost:1:x" in (result.error or "")


def test_an_agent_defined_answer_is_journaled_as_the_text_rendered_inside_the_step() -> None:
    code = "class Point:\n    def __repr__(self):\n        return 'Point(1, 2)'\n\nfinal_answer(Point())"
    agent = CodeAgent([], ScriptedModel([f"```python\n{code}\n```"]), executor="local", verbosity_level=0)
    result = agent.run("Point.", return_full_result=True)
    (entry,) = [e for e in agent._durable.open(result.run_id).entries() if e.kind == "code"]
    # the host does not call the agent's __repr__ after the step (the executor refuses it); the step's text is kept
    assert entry.result["output"] == {"$t": "repr", "type": "__main__.Point", "v": "Point(1, 2)"}


def test_a_resumed_run_is_recorded_in_the_store_as_the_same_run_without_errors(tmp_path: Path) -> None:
    import warnings

    from codeloop import CodeAgent
    from codeloop.store import open_store
    from codeloop.testing import ScriptedModel

    db = tmp_path / "runs.db"

    def first(request: Any) -> str:
        if len(request.messages) > 2:
            raise ConnectionError("network down")
        return "```python\nx = 6 * 7\nprint(x)\n```"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a store write that fails is a RuntimeWarning
        agent = CodeAgent([], ScriptedModel(first), executor="local", store=db, verbosity_level=0)
        run_id = agent.run("Compute.", return_full_result=True).run_id
        model = ScriptedModel(["```python\nfinal_answer(x + 1)\n```"])
        agent = CodeAgent([], model, executor="local", store=db, verbosity_level=0)
        assert agent.resume(run_id) == 43
    store = open_store(db)
    assert store.get_run(run_id).state == "success"
    assert [e.seq for e in store.events(run_id)] == sorted({e.seq for e in store.events(run_id)})
