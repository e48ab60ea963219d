"""A child process for the approval tests: runs an agent that pauses for approval, or resumes it with decisions.

    python -m tests.approval_child run|resume FOLDER code-local|code-sandbox|tool-calling [RUN_ID DECISIONS_JSON]

The run is journaled to files in FOLDER; tool side effects are appended to FOLDER/tools.log so the parent can count
them across processes. Prints the outcome as JSON: run_id, state, answer, pending.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from codeloop import CodeAgent, ToolCallingAgent, tool
from codeloop.journal import FileJournal
from codeloop.testing import ScriptedModel

SNIPPET = "x = read_file('a')\nwho = delete_file('b')\nfinal_answer(x + ' / ' + who)"


def build(folder: Path, kind: str) -> Any:
    def log(line: str) -> None:
        with open(folder / "tools.log", "a") as handle:
            handle.write(line + "\n")

    @tool
    def read_file(path: str) -> str:
        """Read a file.

        Args:
            path: The file.
        """
        log(f"read {path}")
        return f"contents of {path}"

    @tool(requires_approval=True)
    def delete_file(path: str) -> str:
        """Delete a file.

        Args:
            path: The file.
        """
        log(f"delete {path}")
        return f"deleted {path}"

    def script(request: Any) -> Any:
        with open(folder / "model.log", "a") as handle:
            handle.write(f"{request.index}\n")
        if kind == "tool-calling":
            if not any(m.role == "tool" for m in request.messages):
                return {"tool_calls": [
                    {"id": "r1", "name": "read_file", "arguments": {"path": "a"}},
                    {"id": "d1", "name": "delete_file", "arguments": {"path": "b"}},
                    {"id": "d2", "name": "delete_file", "arguments": {"path": "c"}},
                ]}  # fmt: skip
            return {"tool_calls": [{"id": "fa", "name": "final_answer", "arguments": {"answer": "done"}}]}
        return f"```python\n{SNIPPET}\n```"

    journal = FileJournal.factory(folder / "journal")
    tools = [read_file, delete_file]
    if kind == "tool-calling":
        return ToolCallingAgent(tools, ScriptedModel(script), verbosity_level=0, journal=journal)
    executor = kind.removeprefix("code-")
    return CodeAgent(tools, ScriptedModel(script), executor=executor, verbosity_level=0, journal=journal)


def main(argv: list[str]) -> None:
    mode, folder, kind = argv[0], Path(argv[1]), argv[2]
    with build(folder, kind) as agent:
        if mode == "run":
            result = agent.run("tidy up", return_full_result=True)
        else:
            result = agent.resume(argv[3], approvals=json.loads(argv[4]), return_full_result=True)
    pending = [p.to_dict() for p in result.pending]
    print(
        json.dumps(
            {"run_id": result.run_id, "state": result.state, "answer": result.output, "pending": pending}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
