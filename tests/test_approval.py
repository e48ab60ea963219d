"""Human approval and tool hooks (codeloop.approval): pausing a run for a person's decision, resuming it, and the
before/after hooks, for ToolCallingAgent calls and for tool calls made from a CodeAgent's code (in-process and in
the bubblewrap sandbox, where the call lands on the host)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.sandbox_support import needs_bwrap

from codeloop import CodeAgent, ToolCallingAgent, tool
from codeloop.approval import ApprovalRequired, AwaitingApproval, PendingCall, ToolCallInfo, ask, deny
from codeloop.durable import ResumeError, RunAlreadyFinished
from codeloop.testing import ScriptedModel


def code(src: str) -> str:
    return f"Thought: next step.\n```python\n{src}\n```"


def calls(*items: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"id": i, "name": n, "arguments": a} for i, n, a in items]}


def answer(value: Any) -> dict[str, Any]:
    return calls(("fa", "final_answer", {"answer": value}))


def make_tools(log: list[str]) -> list[Any]:
    @tool
    def read_file(path: str) -> str:
        """Read a file.

        Args:
            path: The file.
        """
        log.append(f"read {path}")
        return f"contents of {path}"

    @tool(requires_approval=True)
    def delete_file(path: str) -> str:
        """Delete a file.

        Args:
            path: The file.
        """
        log.append(f"delete {path}")
        return f"deleted {path}"

    return [read_file, delete_file]


# --- ToolCallingAgent ---------------------------------------------------------------------------------------------


def test_parallel_calls_some_needing_approval_each_get_their_own_decision_and_run_once() -> None:
    log: list[str] = []
    model = ScriptedModel(
        [
            calls(
                ("r1", "read_file", {"path": "a"}),
                ("d1", "delete_file", {"path": "b"}),
                ("d2", "delete_file", {"path": "c"}),
            ),
            answer("done"),
        ]  # fmt: skip
    )
    agent = ToolCallingAgent(make_tools(log), model, verbosity_level=0)
    paused = agent.run("clean up", return_full_result=True)
    assert paused.state == "awaiting_approval" and paused.output is None
    assert [(p.call_id, p.tool, p.arguments) for p in paused.pending] == [
        ("d1", "delete_file", {"path": "b"}),
        ("d2", "delete_file", {"path": "c"}),
    ]
    assert log == ["read a"]  # the call needing no approval already ran, the others did not
    assert "contents of a" in (paused.steps[-1].observations or "")
    assert len(model.requests) == 1

    result = agent.resume(
        paused.run_id, approvals={"d1": True, "d2": "c is still needed"}, return_full_result=True
    )
    assert result.state == "success" and result.output == "done" and result.run_id == paused.run_id
    assert log == ["read a", "delete b"]  # each approved call ran exactly once, the denied one never
    observations = [s.observations for s in result.steps if getattr(s, "observations", None)]
    assert "denied: c is still needed" in observations[0] and "deleted b" in observations[0]
    # the model saw one result per call, in its order, including the denial
    tool_messages = [m for m in model.requests[1].messages if m.role == "tool"]
    assert [m.tool_call_id for m in tool_messages] == ["r1", "d1", "d2"]
    assert "denied: c is still needed" in str(tool_messages[2].content)


def test_partial_decisions_keep_the_rest_pending_and_run_pauses_again() -> None:
    log: list[str] = []
    model = ScriptedModel(
        [calls(("d1", "delete_file", {"path": "b"}), ("d2", "delete_file", {"path": "c"})), answer(1)]
    )
    agent = ToolCallingAgent(make_tools(log), model, verbosity_level=0)
    first = agent.run("x", return_full_result=True)
    second = agent.resume(first.run_id, approvals={"d2": True}, return_full_result=True)
    assert second.state == "awaiting_approval" and [p.call_id for p in second.pending] == ["d1"]
    assert log == ["delete c"]
    final = agent.resume(first.run_id, approvals={"d1": False}, return_full_result=True)
    assert final.state == "success" and log == ["delete c"]


def test_run_without_full_result_raises_awaiting_approval_naming_the_calls() -> None:
    model = ScriptedModel([calls(("d1", "delete_file", {"path": "b"})), answer("ok")])
    agent = ToolCallingAgent(make_tools([]), model, verbosity_level=0)
    with pytest.raises(AwaitingApproval) as caught:
        agent.run("x")
    assert "d1: delete_file(path='b')" in str(caught.value) and "agent.resume(" in str(caught.value)
    assert caught.value.result.state == "awaiting_approval"
    assert agent.resume(caught.value.result.run_id, approvals={"d1": True}) == "ok"


def test_unknown_call_id_lists_the_pending_ones_and_a_finished_run_is_refused() -> None:
    model = ScriptedModel([calls(("d1", "delete_file", {"path": "b"})), answer("ok")])
    agent = ToolCallingAgent(make_tools([]), model, verbosity_level=0)
    paused = agent.run("x", return_full_result=True)
    with pytest.raises(
        ValueError, match=r"no pending tool call has the id 'd9'.*d1: delete_file\(path='b'\)"
    ):
        agent.resume(paused.run_id, approvals={"d9": True})
    with pytest.raises(ValueError, match="use True to approve, False to deny"):
        agent.resume(paused.run_id, approvals={"d1": 3})
    with pytest.raises(ResumeError, match="no journal for run 'nope'"):
        agent.resume("nope", approvals={"d1": True})
    assert agent.resume(paused.run_id, approvals={"d1": True}) == "ok"  # the bad attempts changed nothing
    with pytest.raises(RunAlreadyFinished, match=r"already finished \(state 'success'\)"):
        agent.resume(paused.run_id, approvals={"d1": True})


def test_policy_decides_and_its_bad_return_names_the_tool() -> None:
    seen: list[tuple[str, dict[str, Any], str]] = []

    def policy(tool: Any, arguments: dict[str, Any], context: ToolCallInfo) -> Any:
        seen.append((tool.name, dict(arguments), context.call_id))
        if arguments.get("path") == "secret":
            return deny("secret files are off limits")
        return True

    model = ScriptedModel([calls(("r1", "read_file", {"path": "secret"}), ("r2", "read_file", {"path": "a"})),
                           answer("ok")])  # fmt: skip
    log: list[str] = []
    agent = ToolCallingAgent(make_tools(log), model, verbosity_level=0, approval=policy)
    result = agent.run("x", return_full_result=True)
    assert result.state == "success" and log == ["read a"]
    assert seen == [("read_file", {"path": "secret"}, "r1"), ("read_file", {"path": "a"}, "r2")]
    assert "denied: secret files are off limits" in (result.steps[1].observations or "")

    bad = ToolCallingAgent(make_tools([]), ScriptedModel([calls(("r1", "read_file", {"path": "a"}))]),
                           verbosity_level=0, approval=lambda t, a, c: None)  # fmt: skip
    failed = bad.run("x", return_full_result=True)
    assert failed.state == "error" and "for a call of tool 'read_file'" in (failed.error or "")
    with pytest.raises(TypeError, match="approval must be a callable"):
        ToolCallingAgent(make_tools([]), ScriptedModel([]), approval="yes")  # type: ignore[arg-type]


def test_an_allowing_policy_does_not_lift_requires_approval_but_a_deny_wins() -> None:
    model = ScriptedModel([calls(("d1", "delete_file", {"path": "b"})), answer(1)])
    agent = ToolCallingAgent(make_tools([]), model, verbosity_level=0, approval=lambda t, a, c: True)
    assert agent.run("x", return_full_result=True).state == "awaiting_approval"
    log: list[str] = []
    model = ScriptedModel([calls(("d1", "delete_file", {"path": "b"})), answer(1)])
    agent = ToolCallingAgent(make_tools(log), model, verbosity_level=0, approval=lambda t, a, c: deny("no"))
    assert agent.run("x", return_full_result=True).state == "success" and log == []


def test_before_hook_changes_arguments_or_refuses_and_after_hook_changes_the_result() -> None:
    log: list[str] = []

    def sandbox_paths(call: ToolCallInfo) -> Any:
        if call.arguments["path"].startswith("/etc"):
            return deny("only files under /tmp")
        call.arguments["path"] = "/tmp/" + call.arguments["path"]
        return None

    def shout(call: ToolCallInfo, result: Any) -> Any:
        return str(result).upper()

    model = ScriptedModel([calls(("r1", "read_file", {"path": "a"}), ("r2", "read_file", {"path": "/etc/passwd"})),
                           answer(1)])  # fmt: skip
    agent = ToolCallingAgent(make_tools(log), model, verbosity_level=0,
                             before_tool_call=sandbox_paths, after_tool_call=[shout])  # fmt: skip
    result = agent.run("x", return_full_result=True)
    assert log == ["read /tmp/a"]
    observation = result.steps[1].observations or ""
    assert "CONTENTS OF /TMP/A" in observation and "denied: only files under /tmp" in observation


def test_async_run_pauses_and_resumes_too() -> None:
    log: list[str] = []
    model = ScriptedModel([calls(("d1", "delete_file", {"path": "b"})), answer("ok")])
    agent = ToolCallingAgent(make_tools(log), model, verbosity_level=0)

    async def go() -> tuple[Any, Any]:
        paused = await agent.arun("x", return_full_result=True)
        return paused, await agent.aresume(paused.run_id, approvals={"d1": True})

    paused, output = asyncio.run(go())
    assert paused.state == "awaiting_approval" and output == "ok" and log == ["delete b"]


# --- CodeAgent ----------------------------------------------------------------------------------------------------


def code_agent(executor: str, log: list[str], replies: list[Any], **kwargs: Any) -> CodeAgent:
    return CodeAgent(make_tools(log), ScriptedModel(replies), executor=executor, verbosity_level=0, **kwargs)


SWALLOWING_SNIPPET = """
x = read_file("a")
print("before", x)
try:
    delete_file("b")
except BaseException:
    print("swallowed")
read_file("c")
final_answer(x + "!")
"""


@pytest.mark.parametrize("executor", ["local", pytest.param("sandbox", marks=needs_bwrap)])
def test_code_pauses_mid_snippet_keeps_earlier_work_and_cannot_swallow_the_pause(executor: str) -> None:
    log: list[str] = []
    model = ScriptedModel([code(SWALLOWING_SNIPPET)])
    with CodeAgent(make_tools(log), model, executor=executor, verbosity_level=0) as agent:
        paused = agent.run("x", return_full_result=True)
        assert paused.state == "awaiting_approval", paused.error
        assert [(p.call_id, p.tool, p.arguments) for p in paused.pending] == [
            ("1.2", "delete_file", {"path": "b"})
        ]
        assert log == ["read a"]  # the call after the pause never ran, even though the code caught it
        assert "before contents of a" in (paused.steps[-1].observations or "")
        result = agent.resume(paused.run_id, approvals={"1.2": True}, return_full_result=True)
    # the snippet went on at the paused call: read_file('a') was answered from the journal, not run again,
    # and x (set before the call) was there for the rest of the snippet; the model was not asked again
    assert log == ["read a", "delete b", "read c"]
    assert result.state == "success" and result.output == "contents of a!" and result.run_id == paused.run_id
    assert len(model.requests) == 1 and "swallowed" not in (result.steps[1].observations or "")


@pytest.mark.parametrize("executor", ["local", pytest.param("sandbox", marks=needs_bwrap)])
def test_code_call_denied_tells_the_model_and_hooks_apply_inside_code(executor: str) -> None:
    log: list[str] = []
    hooked: list[str] = []

    def before(call: ToolCallInfo) -> Any:
        hooked.append(call.call_id)
        return {"path": call.arguments["path"].upper()}

    replies = [code("y = read_file('a')\ndelete_file(y)"), code("final_answer(y)")]
    with code_agent(executor, log, replies, before_tool_call=before,
                    after_tool_call=lambda call, result: result + "?") as agent:  # fmt: skip
        paused = agent.run("x", return_full_result=True)
        assert paused.pending == [PendingCall("1.2", "delete_file", {"path": "CONTENTS OF A?"})]
        result = agent.resume(paused.run_id, approvals={"1.2": "not that one"}, return_full_result=True)
    # the replay runs the hooks again (the tool itself is answered from the journal: one read)
    assert hooked == ["1.1", "1.2", "1.1", "1.2"] and log == ["read A"]
    assert "was not run: denied: not that one" in (result.steps[1].error or "")
    assert result.output == "contents of A?"


@pytest.mark.parametrize("executor", ["local", pytest.param("sandbox", marks=needs_bwrap)])
def test_policy_denial_in_code_is_a_permission_error_the_code_can_handle(executor: str) -> None:
    log: list[str] = []
    snippet = "try:\n    read_file('secret')\nexcept PermissionError as e:\n    print('refused:', e)\nfinal_answer(1)"
    policy = lambda tool, args, ctx: deny("secret") if args["path"] == "secret" else "allow"  # noqa: E731
    with code_agent(executor, log, [code(snippet)], approval=policy) as agent:
        result = agent.run("x", return_full_result=True)
    assert result.state == "success" and log == []
    assert "refused: the call 1.1 of tool 'read_file' was not run: denied: secret" in (
        result.steps[1].observations or ""
    )


def test_a_policy_may_ask_for_any_tool_and_ids_count_per_step() -> None:
    log: list[str] = []
    policy = lambda tool, args, ctx: ask("second read") if ctx.call_id == "2.2" else "allow"  # noqa: E731
    replies = [code("read_file('a')"), code("read_file('b')\nread_file('c')"), code("final_answer(2)")]
    with code_agent("local", log, replies, approval=policy) as agent:
        paused = agent.run("x", return_full_result=True)
        assert paused.pending == [PendingCall("2.2", "read_file", {"path": "c"}, "second read")]
        assert agent.resume(paused.run_id, approvals={"2.2": True}) == 2
    assert log == ["read a", "read b", "read c"]


def test_the_pause_signal_is_a_base_exception() -> None:
    assert issubclass(ApprovalRequired, BaseException) and not issubclass(ApprovalRequired, Exception)


def test_requires_approval_is_checked_on_tool_classes() -> None:
    from codeloop import Tool
    from codeloop.errors import ToolDefinitionError

    class Wipe(Tool):
        """Wipe everything."""

        requires_approval = True

        def forward(self) -> str:
            return "wiped"

    assert Wipe().requires_approval is True

    class Bad(Tool):
        """Bad."""

        requires_approval = "yes"  # type: ignore[assignment]

        def forward(self) -> str:
            return ""

    with pytest.raises(ToolDefinitionError, match="requires_approval must be True or False"):
        Bad()


# --- the command line ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_run_paused_for_approval_exits_4_and_prints_the_pending_calls(
    as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from codeloop.cli import main
    from codeloop.testing import ScriptedLLMServer

    replies = [code("n = 2\npage = visit_webpage('https://example.com')\nfinal_answer(page)")]
    with ScriptedLLMServer(replies) as server:
        exit_code = main(
            ["run", "read it", "--model", "openai:gpt-4o", "--api-base", server.base_url, "--api-key", "k",
             "--executor", "local", "--tools", "visit_webpage", "--require-approval", "visit_webpage",
             *(["--json"] if as_json else [])]
        )  # fmt: skip
    out = capsys.readouterr().out
    assert exit_code == 4
    if as_json:
        data = json.loads(out)
        assert data["state"] == "awaiting_approval"
        assert data["pending"] == [
            {
                "call_id": "1.1",
                "tool": "visit_webpage",
                "arguments": {"url": "https://example.com"},
                "reason": "",
            }
        ]
    else:
        assert "paused: 1 tool call(s) await approval:" in out
        assert "1.1: visit_webpage(url='https://example.com')" in out and "codeloop approve " in out


def test_cli_require_approval_of_an_unknown_tool_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from codeloop.cli import main

    code_ = main(["run", "x", "--model", "openai:gpt-4o", "--api-key", "k", "--require-approval", "rm_rf"])
    assert code_ == 2 and "--require-approval names rm_rf" in capsys.readouterr().err


# --- decisions from another process (the run replays from its journal) -------------------------------------------


def _child(tmp: Any, *args: str) -> dict[str, Any]:
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "tests.approval_child", args[0], str(tmp), *args[1:]],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "kind", ["code-local", pytest.param("code-sandbox", marks=needs_bwrap), "tool-calling"]
)
def test_a_run_paused_in_one_process_is_decided_and_finished_in_another(kind: str, tmp_path: Any) -> None:
    first = _child(tmp_path, "run", kind)
    assert first["state"] == "awaiting_approval"
    if kind == "tool-calling":
        assert [p["call_id"] for p in first["pending"]] == ["d1", "d2"]
        decisions = '{"d1": true, "d2": "keep c"}'
    else:
        assert first["pending"] == [
            {"call_id": "1.2", "tool": "delete_file", "arguments": {"path": "b"}, "reason": ""}
        ]
        decisions = '{"1.2": true}'
    second = _child(tmp_path, "resume", kind, first["run_id"], decisions)
    assert second["state"] == "success" and second["run_id"] == first["run_id"]
    log = (tmp_path / "tools.log").read_text().splitlines()
    assert log == ["read a", "delete b"]  # every call ran exactly once across both processes; c was denied
    if kind == "tool-calling":
        assert second["answer"] == "done"
    else:
        assert second["answer"] == "contents of a / deleted b"  # the snippet went on at the call, x intact
    assert len((tmp_path / "model.log").read_text().splitlines()) == (2 if kind == "tool-calling" else 1)


def test_approvals_checked_against_the_record_before_any_replay(tmp_path: Any) -> None:
    first = _child(tmp_path, "run", "code-local")
    from tests.approval_child import build

    with build(tmp_path, "code-local") as agent:
        with pytest.raises(
            ValueError, match=r"unknown call id 1.9 .*the pending calls are: 1.2: delete_file"
        ):
            agent.resume(first["run_id"], approvals={"1.9": True})
    assert (tmp_path / "tools.log").read_text().splitlines() == ["read a"]  # nothing replayed, nothing run
    # denied, the call raised in the code; the (scripted) model tried the same snippet again: a new call id
    second = _child(tmp_path, "resume", "code-local", first["run_id"], '{"1.2": false}')
    assert second["state"] == "awaiting_approval" and [p["call_id"] for p in second["pending"]] == ["2.2"]
    with build(tmp_path, "code-local") as agent:
        with pytest.raises(
            ValueError, match=r"unknown call id 1.2 .*the pending calls are: 2.2: delete_file"
        ):
            agent.resume(first["run_id"], approvals={"1.2": True})  # a decision is for one call, once

    other = tmp_path / "other"
    other.mkdir()
    done = _child(other, "run", "tool-calling")
    assert (
        _child(other, "resume", "tool-calling", done["run_id"], '{"d1": true, "d2": true}')["state"]
        == "success"
    )
    with build(other, "tool-calling") as agent:
        with pytest.raises(RunAlreadyFinished, match="already finished"):
            agent.resume(done["run_id"], approvals={"d1": True})


def test_approvals_given_to_a_resume_never_reach_a_later_run() -> None:
    log: list[str] = []
    model = ScriptedModel([code("read_file('a')\ndelete_file('b')"), code("final_answer(1)"),
                           code("read_file('q')\ndelete_file('z')")])  # fmt: skip
    with CodeAgent(make_tools(log), model, executor="local", verbosity_level=0) as agent:
        paused = agent.run("x", return_full_result=True)
        assert agent.resume(paused.run_id, approvals={"1.2": True}) == 1
        again = agent.run(
            "y", return_full_result=True
        )  # its own call 1.2 must ask, whatever was decided before
    assert again.state == "awaiting_approval" and [p.call_id for p in again.pending] == ["1.2"]
    assert log == ["read a", "delete b", "read q"]


def test_a_managed_agent_called_as_a_tool_goes_through_the_managers_hooks_and_policy() -> None:
    child = ToolCallingAgent([], ScriptedModel([answer("report: 42")]), name="analyst",
                             description="Answers questions.", verbosity_level=0)  # fmt: skip
    seen: list[tuple[str, dict[str, Any]]] = []

    def before(call: ToolCallInfo) -> None:
        seen.append((call.tool_name, dict(call.arguments)))

    def policy(tool: Any, arguments: dict[str, Any], context: ToolCallInfo) -> Any:
        return ask("delegating costs money") if tool.name == "analyst" else True

    model = ScriptedModel([calls(("m1", "analyst", {"task": "what is 6*7?"})), answer("42 it is")])
    manager = ToolCallingAgent([], model, managed_agents=[child], verbosity_level=0,
                               approval=policy, before_tool_call=before)  # fmt: skip
    paused = manager.run("ask the analyst", return_full_result=True)
    assert paused.pending == [
        PendingCall("m1", "analyst", {"task": "what is 6*7?"}, "delegating costs money")
    ]
    assert len(child.model.requests) == 0  # type: ignore[attr-defined]
    assert manager.resume(paused.run_id, approvals={"m1": True}) == "42 it is"
    assert "report: 42" in (manager.memory.steps[1].observations or "")  # type: ignore[attr-defined]
    assert seen == [("analyst", {"task": "what is 6*7?"})]


def test_a_tool_calling_manager_pauses_with_its_managed_agent_and_resumes_both() -> None:
    # This failed closed before (the call was not run, the manager's model was told it could not be approved).
    log: list[str] = []
    child = ToolCallingAgent(make_tools(log), ScriptedModel([calls(("d1", "delete_file", {"path": "b"})),
                                                             answer("b is gone")]),
                             name="janitor", description="Deletes files.", verbosity_level=0)  # fmt: skip
    model = ScriptedModel([calls(("m1", "janitor", {"task": "delete b"}), ("r1", "read_file", {"path": "a"})),
                           answer("cleaned")])  # fmt: skip
    manager = ToolCallingAgent(make_tools(log), model, managed_agents=[child], verbosity_level=0)
    paused = manager.run("clean", return_full_result=True)
    assert paused.state == "awaiting_approval" and log == ["read a"]
    assert [(p.call_id, p.tool, p.arguments) for p in paused.pending] == [
        ("m1/d1", "delete_file", {"path": "b"})
    ]
    assert manager.resume(paused.run_id, approvals={"m1/d1": True}) == "cleaned"
    assert log == ["read a", "delete b"]
    observation = manager.memory.steps[1].observations or ""  # type: ignore[attr-defined]
    assert "Here is the final answer from your managed agent 'janitor':\nb is gone" in observation
