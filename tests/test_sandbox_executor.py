"""SandboxExecutor behaviour: the Executor contract, tools on the host over RPC, limits, crashes and restarts.

Everything here runs real sandboxed worker processes (bubblewrap when it works; tests that need the isolation
itself are in test_sandbox_isolation.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.sandbox_support import needs_bwrap, worker_processes

from codeloop.errors import ExecutionError
from codeloop.executors import OpaqueValue, SandboxExecutor

pytestmark = needs_bwrap


@dataclasses.dataclass
class _HostOnly:
    value: int


@pytest.fixture
def sandbox() -> Iterator[SandboxExecutor]:
    with SandboxExecutor(timeout=60) as executor:  # no step here should time out: room for a loaded machine
        yield executor


def test_variables_functions_classes_and_imports_persist(sandbox: SandboxExecutor) -> None:
    sandbox.run(
        "import math\nclass Box:\n    def __init__(self, v): self.v = v\ndef area(r): return math.pi * r * r\nb = Box(2)"
    )
    result = sandbox.run("round(area(b.v), 3)")
    assert result.output == 12.566 and result.is_final_answer is False


def test_print_output_and_last_expression(sandbox: SandboxExecutor) -> None:
    result = sandbox.run("print('hello', 42)\nx = [1, 2]\nx + [3]")
    assert result.logs == "hello 42\n" and result.output == [1, 2, 3]
    assert sandbox.run("y = 5").output is None


def test_output_written_straight_to_the_file_descriptors_reaches_the_logs(sandbox: SandboxExecutor) -> None:
    result = sandbox.run(
        "import os\nprint('via print')\nos.write(1, b'fd one\\n')\nos.write(2, b'fd two\\n')"
    )
    assert result.logs.startswith("via print\n") and "fd one\n" in result.logs and "fd two\n" in result.logs
    assert sandbox.run("print('next')").logs == "next\n"


def test_syntax_error_names_the_line_and_points_at_it(sandbox: SandboxExecutor) -> None:
    with pytest.raises(ExecutionError) as caught:
        sandbox.run("x = 1\nprint(x +)\n")
    message = str(caught.value)
    assert "line 2" in message and "print(x +)" in message and "^" in message


def test_exception_names_line_and_type_and_keeps_what_was_printed(sandbox: SandboxExecutor) -> None:
    with pytest.raises(ExecutionError) as caught:
        sandbox.run("print('before')\nitems = {}\nitems['missing']")
    assert "Error on line 3" in str(caught.value) and "KeyError: 'missing'" in str(caught.value)
    assert caught.value.logs == "before\n"


def test_final_answer_ends_the_step_even_inside_except_handlers(sandbox: SandboxExecutor) -> None:
    result = sandbox.run("try:\n    final_answer({'a': (1, 2)})\nexcept Exception:\n    print('swallowed')")
    assert result.is_final_answer and result.output == {"a": (1, 2)} and "swallowed" not in result.logs
    result = sandbox.run("try:\n    final_answer(7)\nexcept:\n    print('caught anyway')\nprint('went on')")
    assert result.is_final_answer and result.output == 7 and "went on" in result.logs


def test_final_answer_tool_is_applied_on_the_host(sandbox: SandboxExecutor) -> None:
    seen: list[Any] = []

    def final_answer(answer: Any) -> str:
        seen.append(answer)
        return f"checked: {answer}"

    sandbox.send_tools({"final_answer": final_answer})
    result = sandbox.run("final_answer(41 + 1)")
    assert result.output == "checked: 42" and seen == [42]


def test_final_answer_with_a_value_that_cannot_leave_the_sandbox_names_its_type(
    sandbox: SandboxExecutor,
) -> None:
    with pytest.raises(ExecutionError, match=r"final_answer\(\) cannot return this value.*Secret"):
        sandbox.run("class Secret:\n    pass\nfinal_answer(Secret())")
    assert sandbox.run("final_answer(str('fine'))").output == "fine"


def test_top_level_await(sandbox: SandboxExecutor) -> None:
    code = "import asyncio\nasync def twice(x):\n    await asyncio.sleep(0)\n    return 2 * x\nawait asyncio.gather(twice(1), twice(2))"
    assert sandbox.run(code).output == [2, 4]


def test_tools_run_on_the_host_with_positional_and_keyword_arguments(sandbox: SandboxExecutor) -> None:
    calls: list[tuple[Any, ...]] = []

    def lookup(city: str, year: int = 2020, *, unit: str = "km2") -> dict[str, Any]:
        calls.append((city, year, unit, os.getpid()))
        return {"city": city, "year": year, "unit": unit, "when": dt.date(year, 1, 1)}

    sandbox.send_tools({"lookup": lookup})
    result = sandbox.run("a = lookup('Paris')\nb = lookup('Tokyo', 2021, unit='mi2')\n(a, b['when'], os_pid)"
                         .replace("os_pid", "__import__('os').getpid()"))  # fmt: skip
    first, when, sandbox_pid = result.output
    assert first == {"city": "Paris", "year": 2020, "unit": "km2", "when": dt.date(2020, 1, 1)}
    assert when == dt.date(2021, 1, 1)
    assert [c[:3] for c in calls] == [("Paris", 2020, "km2"), ("Tokyo", 2021, "mi2")]
    assert {c[3] for c in calls} == {os.getpid()} and sandbox_pid != os.getpid()


def test_codeloop_tools_work_and_their_exceptions_keep_their_type(sandbox: SandboxExecutor) -> None:
    from codeloop import tool

    @tool
    def divide(a: float, b: float) -> float:
        """Divide two numbers.

        Args:
            a: The numerator.
            b: The denominator.
        """
        if b == 0:
            raise ValueError("b must not be zero")
        return a / b

    sandbox.send_tools({"divide": divide})
    code = "try:\n    divide(1, 0)\nexcept ValueError as err:\n    caught = str(err)\n(divide(9, b=3), caught, divide.__doc__)"
    value, caught, doc = sandbox.run(code).output
    assert value == 3.0 and caught == "b must not be zero" and "Divide two numbers" in doc
    with pytest.raises(ExecutionError, match="ValueError: b must not be zero"):
        sandbox.run("divide(2, 0)")


def test_a_tool_argument_that_cannot_travel_is_a_clear_type_error(sandbox: SandboxExecutor) -> None:
    sandbox.send_tools({"echo": lambda value: value})
    code = "class Widget:\n    pass\ntry:\n    echo(Widget())\nexcept TypeError as err:\n    message = str(err)\nmessage"
    message = sandbox.run(code).output
    assert "echo" in message and "Widget" in message and "cannot leave the sandbox" in message


def test_tool_results_can_be_any_picklable_object(sandbox: SandboxExecutor) -> None:
    import argparse
    import collections

    sandbox.send_tools(
        {
            "namespace": lambda: argparse.Namespace(a=1, b="two"),
            "counter": lambda: collections.Counter("hello"),
            "unsendable": lambda: threading.Lock(),
            "host_class": lambda: _HostOnly(3),
        }
    )
    assert sandbox.run("ns = namespace()\n(type(ns).__name__, ns.a, ns.b)").output == ("Namespace", 1, "two")
    assert sandbox.run("counter().most_common(1)").output == [("l", 2)]
    with pytest.raises(ExecutionError, match="unsendable.*cannot be sent to the code"):
        sandbox.run("unsendable()")
    with pytest.raises(ExecutionError, match="host_class.*cannot be rebuilt in the sandbox.*No module named"):
        sandbox.run("host_class()")


def test_time_inside_tools_does_not_count_against_the_time_limit() -> None:
    # a limit with room for the step's own round trips on a loaded machine, and a tool that outlasts it
    with SandboxExecutor(timeout=3) as executor:
        executor.send_tools({"slow": lambda: time.sleep(4) or "done"})
        assert executor.run("slow()").output == "done"


def test_a_step_past_the_time_limit_is_stopped_and_the_next_step_gets_a_fresh_worker() -> None:
    # 3 s: the steps that must finish get room on a loaded machine; the endless one is stopped, not awaited
    with SandboxExecutor(timeout=3) as executor:
        executor.send_tools({"ping": lambda: "pong"})
        executor.send_variables({"given": 5})
        executor.run("mine = 1\nprint('started')")
        with pytest.raises(ExecutionError) as caught:
            executor.run("print('working')\nwhile True:\n    pass")
        message = str(caught.value)
        assert "time limit of 3 seconds" in message and "lost" in message
        assert "working" in caught.value.logs
        assert executor.run("(ping(), given, 'mine' in globals())").output == ("pong", 5, False)


def test_a_crashed_worker_is_reported_and_replaced(sandbox: SandboxExecutor) -> None:
    sandbox.run("x = 1")
    with pytest.raises(ExecutionError) as caught:
        sandbox.run("import ctypes\nctypes.string_at(0)")
    message = str(caught.value)
    assert "died" in message and "SIGSEGV" in message and "fresh worker" in message
    assert sandbox.run("'x' in globals()").output is False
    assert sandbox.restarts >= 1


def test_memory_limit_gives_memory_error_and_the_executor_stays_usable() -> None:
    with SandboxExecutor(timeout=10, max_memory_mb=256) as executor:
        with pytest.raises(ExecutionError, match="MemoryError"):
            executor.run("blob = bytearray(512 * 1024 * 1024)")
        assert executor.run("sum(range(10))").output == 45


def test_filling_memory_restarts_the_worker_and_says_so() -> None:
    with SandboxExecutor(timeout=10, max_memory_mb=256) as executor:
        with pytest.raises(ExecutionError) as caught:
            executor.run("chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))")
        assert "MemoryError" in str(caught.value) and "memory limit is nearly used up" in str(caught.value)
        assert executor.run("'chunks' in globals()").output is False


def test_printed_output_streams_while_the_code_runs() -> None:
    # The code waits (in a host tool, whose time the step's limit does not count) until the host has seen its
    # first line: that happens only if output streams while the code runs. Output held until the step ended
    # would leave `first_seen` unset, the wait would time out, and the code would print 'not streamed'.
    chunks: list[str] = []
    first_seen = threading.Event()

    def on_output(text: str) -> None:
        chunks.append(text)
        if "first" in "".join(chunks):
            first_seen.set()

    with SandboxExecutor(timeout=5, on_output=on_output) as executor:
        executor.send_tools({"host_saw_first": lambda: first_seen.wait(60)})
        result = executor.run("print('first')\nprint('second' if host_saw_first() else 'not streamed')")
    assert "".join(chunks) == "first\nsecond\n" == result.logs


def test_an_output_flood_is_cut_to_head_and_tail() -> None:
    with SandboxExecutor(
        timeout=120, max_print_outputs_length=1000
    ) as executor:  # 200,000 prints: slow when loaded
        result = executor.run("for i in range(200000):\n    print('line', i)\nprint('end')")
    assert len(result.logs) < 1200 and result.logs.startswith("line 0\n") and result.logs.endswith("end\n")
    assert "characters cut" in result.logs


def test_variables_sent_by_the_host_arrive_as_copies_and_survive_restarts() -> None:
    with SandboxExecutor(timeout=3) as executor:
        data = {"rows": [(1, "a")], "when": dt.datetime(2024, 1, 2, 3, 4), "blob": b"\x00\x01"}
        executor.send_variables({"data": data})
        assert executor.run("data['rows'].append((2, 'b'))\ndata").output["rows"] == [(1, "a"), (2, "b")]
        assert data["rows"] == [(1, "a")]
        with pytest.raises(ExecutionError):
            executor.run("while True: pass")
        assert executor.run("data['when'].year, data['blob']").output == (2024, b"\x00\x01")


def test_variables_that_cannot_be_sent_are_refused_with_their_name(sandbox: SandboxExecutor) -> None:
    with pytest.raises(TypeError, match="variable 'lock' cannot be sent"):
        sandbox.send_variables({"lock": threading.Lock()})
    sandbox.run("1")
    with pytest.raises(
        TypeError, match="could not be rebuilt inside the worker.*'host_only'.*No module named"
    ):
        sandbox.send_variables({"host_only": _HostOnly(1), "fine": 2})
    assert sandbox.run("fine").output == 2
    with pytest.raises(ExecutionError, match="died"):
        sandbox.run("import ctypes\nctypes.string_at(0)")
    assert sandbox.run("(fine, 'host_only' in globals())").output == (
        2,
        False,
    )  # the fresh worker starts fine
    with pytest.raises(ValueError, match="not a valid Python identifier"):
        sandbox.send_variables({"not valid": 1})


def test_get_variables_returns_copies_and_opaque_stand_ins(sandbox: SandboxExecutor) -> None:
    sandbox.run("import threading\ntotal = 42\nnames = ('a', 'b')\nlock = threading.Lock()")
    values = sandbox.get_variables(["total", "names", "lock", "missing"])
    assert values["total"] == 42 and values["names"] == ("a", "b")
    assert isinstance(values["lock"], OpaqueValue) and "lock" in repr(values["lock"])
    assert "missing" not in values


def test_close_kills_the_worker_and_is_idempotent() -> None:
    before = set(worker_processes())
    executor = SandboxExecutor()
    executor.run("1")
    assert set(worker_processes()) - before
    executor.close()
    executor.close()
    assert not set(worker_processes()) - before
    with pytest.raises(ExecutionError, match="closed"):
        executor.run("1")


def test_a_worker_started_from_a_short_lived_thread_survives_that_thread() -> None:
    executor = SandboxExecutor()
    thread = threading.Thread(target=lambda: executor.run("x = 3"))
    thread.start()
    thread.join()
    time.sleep(0.2)
    try:
        assert executor.run("x * 2").output == 6
        # started by a helper thread that blocks SIGINT/SIGTERM, the worker still begins with no signal blocked
        assert (
            executor.run("import _signal\nsorted(_signal.pthread_sigmask(_signal.SIG_BLOCK, []))").output
            == []
        )
    finally:
        executor.close()


def test_ctrl_c_during_a_tool_stops_the_step_and_the_next_step_works(sandbox: SandboxExecutor) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    sandbox.send_tools({"interrupted": interrupted})
    sandbox.run("kept = 1")
    with pytest.raises(KeyboardInterrupt):
        sandbox.run("interrupted()")
    assert sandbox.run("'kept' in globals()").output is False
    assert sandbox.run("2 + 2").output == 4


def test_busy_threads_left_after_a_step_restart_the_worker(sandbox: SandboxExecutor) -> None:
    code = "import threading\ndef spin():\n    while True:\n        pass\nthreading.Thread(target=spin, daemon=True).start()\nprint('started')"
    result = sandbox.run(code)
    assert "still using the CPU" in result.logs and "fresh worker" in result.logs
    assert sandbox.run("'spin' in globals()").output is False


def test_a_garbage_collection_bomb_goes_off_within_its_own_step() -> None:
    with SandboxExecutor(timeout=3) as executor:  # room for the later step on a loaded machine
        code = "class Node:\n    def __init__(self):\n        self.me = self\n    def __del__(self):\n        while True:\n            pass\nNode()\nprint('left')"
        with pytest.raises(ExecutionError, match="time limit"):
            executor.run(code)
        assert executor.run("'later steps are fine'").output == "later steps are fine"


def test_a_forged_message_cannot_make_the_host_unpickle(sandbox: SandboxExecutor, tmp_path: Any) -> None:
    marker = tmp_path / "host-unpickled"
    code = f"""
import base64, pickle
class Touch:
    def __reduce__(self):
        return (open, ({str(marker)!r}, "w"))
blob = base64.b64encode(pickle.dumps(Touch())).decode()
worker = final_answer.__self__
worker.channel.send({{"op": "final", "v": {{"$t": "pickle", "v": blob}}}})
"""
    with pytest.raises(ExecutionError, match="broke the protocol"):
        sandbox.run(code)
    assert not marker.exists()
    assert sandbox.run("1 + 1").output == 2


def test_garbage_on_the_wire_is_a_protocol_error_not_a_host_crash(sandbox: SandboxExecutor) -> None:
    with pytest.raises(ExecutionError, match="broke the protocol"):
        sandbox.run(
            "import os\nos.write(final_answer.__self__.channel.out_fd, b'\\xff not json\\n')\nimport time\ntime.sleep(1)"
        )
    assert sandbox.run("3").output == 3


def test_a_huge_message_is_refused_without_exhausting_the_host() -> None:
    with SandboxExecutor(timeout=10, max_message_mb=1) as executor:
        with pytest.raises(ExecutionError, match="broke the protocol.*over 1 MiB"):
            executor.run(
                "import os\nfd = final_answer.__self__.channel.out_fd\nfor _ in range(64):\n    os.write(fd, b'x' * 65536)\nimport time\ntime.sleep(5)"
            )
        assert executor.run("'ok'").output == "ok"
