"""What agent code writes in the sandbox reaches the step's logs, whichever way it writes it (issue 8 §2.8).

Runs the real worker in the "subprocess" isolation mode (always available on Linux) and under bubblewrap where it
can run."""

from __future__ import annotations

import pytest
from tests.sandbox_support import needs_bwrap

from codeloop.executors import SandboxExecutor

ISOLATIONS = [pytest.param("subprocess", id="subprocess"), pytest.param("bubblewrap", marks=needs_bwrap)]


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_bytes_written_to_sys_stdout_buffer_show_up_in_the_logs(isolation: str) -> None:
    streamed: list[str] = []
    with SandboxExecutor(isolation=isolation, on_output=streamed.append) as sandbox:
        code = (
            "import sys\n"
            "print('text', flush=True)\n"
            "count = sys.stdout.buffer.write(b'raw bytes \\xc2')\n"  # a UTF-8 character split across two writes
            "sys.stdout.buffer.write(bytearray(b'\\xa9 caf\\xc3\\xa9\\n'))\n"
            "sys.stdout.buffer.flush()\n"
            "sys.stderr.buffer.write(b'to stderr \\xff\\n')\n"
            "count"
        )
        result = sandbox.run(code)
        assert result.logs == "text\nraw bytes © café\nto stderr \\xff\n"
        assert result.output == len(b"raw bytes \xc2")
        assert "".join(streamed) == result.logs
        # a character cut off at the end of a step is shown as escapes, not carried into the next step
        assert sandbox.run("import sys\nsys.stdout.buffer.write(b'cut \\xe2\\x82')").logs == "cut \\xe2\\x82"
        assert sandbox.run("print('next')").logs == "next\n"
