"""Every ```python block of README.md runs, as a user would paste it, against the scripted LLM server.

Each block is written to a file and run by a fresh interpreter in an empty working directory, so a block that
leans on a name or an import from another block fails here. Where a block needs a model, the environment points
the providers' SDKs at a `ScriptedLLMServer` on 127.0.0.1 (`OPENAI_BASE_URL`, `ANTHROPIC_BASE_URL`, fake keys),
so `model="openai:gpt-4o"` works unchanged; the server answers every call with a final answer (a code block, a
`final_answer` tool call, or the JSON code action, whichever the request asks for).

A block that cannot run offline (real cloud services, credentials) is preceded by a line
`<!-- not-run: why -->`; those are reported as skips naming the line and the reason, and kept few.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from codeloop.testing import ScriptedLLMServer, ScriptRequest

README = Path(__file__).resolve().parent.parent / "README.md"
MAX_NOT_RUN = 3
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.*?)\s*-->")


@dataclass
class Block:
    """One fenced Python block of the README."""

    line: int
    """1-based line of the opening fence."""
    code: str
    not_run: str | None
    """The reason given in a `<!-- not-run: ... -->` line just above the block, if any."""


def readme_blocks(text: str) -> list[Block]:
    """The ```python blocks of `text`, in order, with any not-run marker right above each."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() in ("```python", "```py"):
            start = index
            body: list[str] = []
            index += 1
            while index < len(lines) and lines[index].strip() != "```":
                body.append(lines[index])
                index += 1
            above = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
            marker = NOT_RUN.search(above)
            blocks.append(Block(start + 1, "\n".join(body) + "\n", marker.group(1) if marker else None))
        index += 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def final_answer_reply(request: ScriptRequest) -> str | dict:
    """The scripted model's one move: end the run, in whatever form the request asks for."""
    if request.response_format is not None:
        return json.dumps({"thought": "The README test ends here.", "code": "final_answer(42)"})
    if any((tool.get("function") or tool).get("name") == "final_answer" for tool in request.tools or []):
        return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "42"}}]}
    return "Thought: The README test ends here.\n```python\nfinal_answer(42)\n```"


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(final_answer_reply) as scripted:
        yield scripted


def _environment(server: ScriptedLLMServer) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL")) and k != "HF_TOKEN"
    }
    # The interpreter's bin first, so console scripts installed beside it (MCP servers) are found.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    src = str(Path(__file__).resolve().parent.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in [src, env.get("PYTHONPATH", "")] if p)
    env.update(
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY="readme-test",
        ANTHROPIC_BASE_URL=server.url,
        ANTHROPIC_API_KEY="readme-test",
        CODELOOP_MODEL="openai:gpt-4o",
        BRAVE_API_KEY="readme-test",  # the toolbox block builds a Brave search tool (no request)
    )
    return env


def test_readme_has_python_blocks() -> None:
    # The parser would otherwise pass vacuously on a README it can no longer read.
    assert len(BLOCKS) >= 15
    assert all(block.code.strip() for block in BLOCKS)


def test_blocks_not_run_are_few_and_say_why() -> None:
    skipped = [block for block in BLOCKS if block.not_run is not None]
    assert all(block.not_run for block in skipped), "a <!-- not-run: --> marker must give its reason"
    assert len(skipped) <= MAX_NOT_RUN, "not run: " + ", ".join(
        f"line {b.line} ({b.not_run})" for b in skipped
    )


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_readme_block_runs(block: Block, server: ScriptedLLMServer, tmp_path: Path) -> None:
    if block.not_run is not None:
        pytest.skip(f"README.md:{block.line} is marked not-run: {block.not_run}")
    script = tmp_path / "readme_block.py"
    script.write_text(block.code, encoding="utf-8")
    workdir = tmp_path / "work"
    workdir.mkdir()
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=workdir,
        env=_environment(server),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, (
        f"README.md:{block.line} failed (exit {done.returncode}):\n{done.stderr[-3000:]}\n{done.stdout[-1000:]}"
    )
