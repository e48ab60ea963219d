"""Agents for the nested-approval tests: a CodeAgent manager whose managed agent's calls need approval.

    python -m tests.nested_approval_child run STORE FOLDER code|tool-calling [--hang]
    python -m tests.nested_approval_child resume STORE FOLDER code|tool-calling RUN_ID DECISIONS_JSON

The manager (a CodeAgent, or a ToolCallingAgent) calls a tool, then its managed agent "cleaner" (a ToolCallingAgent
making three parallel calls, two of which need approval), then answers with both results. Every real tool call and model call is appended to FOLDER/tools.log
and FOLDER/model.log, so a test can count them across processes. Prints the outcome as one JSON line: run_id,
state, answer, pending; with --hang the process then waits to be killed (a crash while paused).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from codeloop import CodeAgent, ToolCallingAgent, tool
from codeloop.testing import ScriptedModel

MANAGER_CODE = "pre = read_file('m')\nreport = cleaner(task='tidy up')\nfinal_answer(pre + ' | ' + report)"


def build(store: str, folder: Path, *, ask: bool = True, kind: str = "code") -> Any:
    """The manager (`kind` "code" or "tool-calling") with its managed agent, both recording into `store`;
    `ask=False`: no call needs approval."""

    def log(name: str, line: str) -> None:
        with open(folder / name, "a") as handle:
            handle.write(line + "\n")

    @tool
    def read_file(path: str) -> str:
        """Read a file.

        Args:
            path: The file.
        """
        log("tools.log", f"read {path}")
        return f"contents of {path}"

    @tool(requires_approval=ask)
    def delete_file(path: str) -> str:
        """Delete a file.

        Args:
            path: The file.
        """
        log("tools.log", f"delete {path}")
        return f"deleted {path}"

    def calls_then_answer(who: str, first_calls: list[dict[str, Any]], joiner: str) -> Any:
        """A scripted model: `first_calls`, then final_answer with every tool result joined (calls logged)."""

        def script(request: Any) -> Any:
            results = [str(m.content) for m in request.messages if m.role == "tool"]
            log("model.log", f"{who} after {len(results)} results")
            if not results:
                return {"tool_calls": first_calls}
            answer = joiner.join(results)
            return {"tool_calls": [{"id": "fa", "name": "final_answer", "arguments": {"answer": answer}}]}

        return script

    cleaner_script = calls_then_answer("cleaner", [
        {"id": "r1", "name": "read_file", "arguments": {"path": "a"}},
        {"id": "d1", "name": "delete_file", "arguments": {"path": "b"}},
        {"id": "d2", "name": "delete_file", "arguments": {"path": "c"}},
    ], "; ")  # fmt: skip

    def manager_script(request: Any) -> str:
        log("model.log", f"manager after {len(request.messages)} messages")
        return f"```python\n{MANAGER_CODE}\n```"

    cleaner = ToolCallingAgent(
        [read_file, delete_file], ScriptedModel(cleaner_script), name="cleaner",
        description="Cleans up files.", store=store, verbosity_level=0,
    )  # fmt: skip

    calling_manager_script = calls_then_answer("manager", [
        {"id": "rm", "name": "read_file", "arguments": {"path": "m"}},
        {"id": "k1", "name": "cleaner", "arguments": {"task": "tidy up"}},
    ], " | ")  # fmt: skip

    if kind == "tool-calling":
        return ToolCallingAgent(
            [read_file], ScriptedModel(calling_manager_script), managed_agents=[cleaner], store=store,
            verbosity_level=0,
        )  # fmt: skip
    return CodeAgent(
        [read_file], ScriptedModel(manager_script), managed_agents=[cleaner], executor="local", store=store,
        verbosity_level=0,
    )  # fmt: skip


def outcome(result: Any) -> dict[str, Any]:
    """The JSON the tests read."""
    return {
        "run_id": result.run_id,
        "state": result.state,
        "answer": result.output,
        "pending": [p.to_dict() for p in result.pending],
    }


def main(argv: list[str]) -> None:
    command, store, folder, kind = argv[0], argv[1], Path(argv[2]), argv[3]
    with build(store, folder, kind=kind) as agent:
        if command == "run":
            result = agent.run("Tidy up.", return_full_result=True)
        else:
            result = agent.resume(argv[4], approvals=json.loads(argv[5]), return_full_result=True)
        print(json.dumps(outcome(result)), flush=True)
        if "--hang" in argv:
            time.sleep(600)  # paused, still alive: the test kills this process with SIGKILL


if __name__ == "__main__":
    main(sys.argv[1:])
