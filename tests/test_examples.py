"""The examples stay runnable: the offline one runs for real, the others must import and build their agents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_offline_example_runs_end_to_end() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "offline_scripted.py")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "answer: action" in proc.stdout
    assert "{'code': 4, 'is': 2, 'the': 3, 'action': 6, 'space': 5}" in proc.stdout


@pytest.mark.parametrize("name", ["quickstart.py", "multi_agent.py", "mcp_tools.py"])
def test_example_compiles(name: str) -> None:
    source = (EXAMPLES / name).read_text()
    compile(source, name, "exec")
    assert '"""' in source.splitlines()[0]  # each example opens with how to run it
