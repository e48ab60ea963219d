"""LocalExecutor: the executor contract, output capture, final answers, tools, errors the model sees."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from codeloop.errors import ExecutionError
from codeloop.executors import create_executor
from codeloop.executors.base import ExecutionResult, Executor
from codeloop.executors.local import LocalExecutionResult, LocalExecutor


@pytest.fixture
def executor() -> Any:
    with LocalExecutor() as made:
        yield made


def test_satisfies_the_executor_protocol_and_factory() -> None:
    made = create_executor("local", additional_authorized_imports=["json"], max_print_outputs_length=100)
    try:
        assert isinstance(made, LocalExecutor)
        assert isinstance(made, Executor)
        assert made.max_print_outputs_length == 100
    finally:
        made.close()


def test_prints_and_last_expression(executor: LocalExecutor) -> None:
    result = executor.run("x = 6\nprint('x is', x, sep=': ', end='!\\n')\nx * 7")
    assert isinstance(result, ExecutionResult)
    assert result == LocalExecutionResult(42, "x is: 6!\n", False, output_repr="42")


def test_no_value_when_last_statement_is_not_an_expression(executor: LocalExecutor) -> None:
    assert executor.run("y = [1, 2]").output is None
    assert executor.run("y").output == [1, 2]


def test_state_persists_across_runs(executor: LocalExecutor) -> None:
    executor.run("import math\nclass Box:\n    def __init__(self, v):\n        self.v = v\n")
    executor.run("def area(r):\n    return round(math.pi * r * r, 2)\nbox = Box(area(2))")
    assert executor.run("box.v, type(box).__name__").output == (12.57, "Box")


def test_final_answer_ends_the_step_with_the_object(executor: LocalExecutor) -> None:
    result = executor.run("data = {'k': [1, 2]}\nfinal_answer(data)\nprint('not reached')")
    assert result.is_final_answer and result.output == {"k": [1, 2]} and result.logs == ""
    assert executor.run("data").output is result.output  # the very object, not a copy


@pytest.mark.parametrize(
    "code",
    [
        "try:\n    final_answer(5)\nexcept Exception:\n    print('swallowed')",
        "try:\n    final_answer(5)\nexcept BaseException:\n    print('swallowed')",
        "try:\n    final_answer(5)\nexcept:\n    pass\nprint('after')",
        "def f():\n    try:\n        final_answer(5)\n    finally:\n        print('cleanup')\nf()",
        "class Quiet:\n    def __enter__(self):\n        return self\n    def __exit__(self, *a):\n        return True\n"
        "with Quiet():\n    final_answer(5)\nprint('after with')",
        "for i in range(3):\n    try:\n        final_answer(5)\n    except BaseException:\n        continue",
    ],
)
def test_final_answer_cannot_be_swallowed(executor: LocalExecutor, code: str) -> None:
    result = executor.run(code)
    assert result.is_final_answer and result.output == 5
    assert "swallowed" not in result.logs and "after" not in result.logs and "cleanup" not in result.logs


def test_final_answer_tool_transforms_the_answer(executor: LocalExecutor) -> None:
    executor.send_tools({"final_answer": lambda answer: f"<<{answer}>>"})
    result = executor.run("final_answer(3)")
    assert result.is_final_answer and result.output == "<<3>>"


def test_tools_are_callable_but_their_objects_are_not_reachable(executor: LocalExecutor) -> None:
    class SearchTool:
        name = "search"
        description = "Search the web."
        api_key = "sk-very-secret"

        def __call__(self, query: str) -> str:
            return f"results for {query}"

    executor.send_tools({"search": SearchTool()})
    assert executor.run("search(query='cats')").output == "results for cats"
    assert executor.run("search.__doc__").output == "Search the web."
    with pytest.raises(ExecutionError) as info:
        executor.run("search.api_key")
    assert "has no attribute 'api_key'" in str(info.value)


def test_send_variables_and_bad_names(executor: LocalExecutor) -> None:
    executor.send_variables({"rows": [1, 2, 3]})
    assert executor.run("sum(rows)").output == 6
    with pytest.raises(ValueError, match="not a valid Python identifier"):
        executor.send_variables({"two words": 1})
    with pytest.raises(TypeError, match="not callable"):
        executor.send_tools({"broken": 42})


def test_syntax_error_shows_line_and_caret(executor: LocalExecutor) -> None:
    with pytest.raises(ExecutionError) as info:
        executor.run("x = 1\nprint('a'\ny = 2")
    message = str(info.value)
    assert message.startswith("SyntaxError on line 2:")
    assert "print('a'" in message and "^" in message


def test_forbidden_import_names_the_module_and_the_fix(executor: LocalExecutor) -> None:
    with pytest.raises(ExecutionError) as info:
        executor.run("import json\nimport subprocess")
    message = str(info.value)
    assert "line 2" in message and "'subprocess'" in message
    assert "additional_authorized_imports=['subprocess']" in message


def test_exception_reports_the_agent_code_line_and_keeps_logs(executor: LocalExecutor) -> None:
    code = "def ratio(a, b):\n    return a / b\n\nprint('starting')\nratio(1, 0)"
    with pytest.raises(ExecutionError) as info:
        executor.run(code)
    message = str(info.value)
    assert "Error on line 2: return a / b" in message
    assert "line 5, in <module>: ratio(1, 0)" in message
    assert message.rstrip().endswith(
        "ZeroDivisionError: division by zero\nVariables defined now: ratio (function)"
    )
    assert "local.py" not in message and "Traceback (most recent" not in message
    assert info.value.logs == "starting\n"


def test_long_output_is_truncated_head_and_tail() -> None:
    with LocalExecutor(max_print_outputs_length=100) as executor:
        result = executor.run("for i in range(1000):\n    print(f'line {i}')")
    assert result.logs.startswith("line 0\nline 1\n")
    assert result.logs.endswith("line 998\nline 999\n")
    assert "characters cut from the middle" in result.logs
    assert len(result.logs) < 200


def test_authorizing_packages_with_wildcards() -> None:
    with LocalExecutor(additional_authorized_imports=["xml.*"]) as executor:
        assert (
            executor.run(
                "import xml.dom.minidom\nxml.dom.minidom.parseString('<a/>').documentElement.tagName"
            ).output
            == "a"
        )
    with LocalExecutor(additional_authorized_imports=["*"]) as executor:
        assert executor.run("import textwrap, shlex\nshlex.quote('a b')").output == "'a b'"
    with pytest.raises(ValueError, match="not a module name"):
        LocalExecutor(additional_authorized_imports=["not a module"])
    with pytest.raises(TypeError, match="list of module names"):
        LocalExecutor(additional_authorized_imports="numpy")


def test_top_level_await(executor: LocalExecutor) -> None:
    code = "async def twice(x):\n    return 2 * x\n\nvalue = await twice(21)\nvalue"
    assert executor.run(code).output == 42


def test_close_is_idempotent_and_blocks_further_runs() -> None:
    executor = LocalExecutor()
    executor.run("x = 1")
    executor.close()
    executor.close()
    with pytest.raises(ExecutionError, match="closed"):
        executor.run("x")


def test_concurrent_executors_keep_their_own_output_and_state() -> None:
    results: dict[int, Any] = {}

    def work(n: int) -> None:
        with LocalExecutor() as executor:
            executor.run(f"me = {n}")
            results[n] = executor.run("for i in range(200):\n    print(me)\nme")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, result in results.items():
        assert result.output == n and result.logs == f"{n}\n" * 200


def test_output_repr_is_rendered_inside_the_step(executor: LocalExecutor) -> None:
    result = executor.run(
        "class P:\n    def __repr__(self):\n        return 'P!'\n    def double(self):\n        return 2\nP()"
    )
    assert result.output_repr == "P!"
    # once the step is over, agent code does not run for the host any more: repr() gives what the step rendered,
    # other objects of the class their plain object repr, and other methods refuse to run
    assert repr(result.output) == "P!" and str(result.output) == "P!"
    assert repr([result.output, result.output]) == "[P!, P!]"
    other = executor.run("[P()]").output[0]
    assert repr(other).startswith("<__main__.P object at 0x")
    with pytest.raises(RuntimeError, match="outside a step"):
        result.output.double()


def test_class_bodies_may_hold_any_statement(executor: LocalExecutor) -> None:
    code = (
        "class Q:\n    def __enter__(self):\n        return self\n    def __exit__(self, *a):\n        return False\n"
        "class C:\n    with Q():\n        x = 1\n    try:\n        y = 2\n    finally:\n        z = 3\n"
        "(C.x, C.y, C.z)"
    )
    assert executor.run(code).output == (1, 2, 3)


def test_printed_text_streams_to_on_output(executor: LocalExecutor) -> None:
    pieces: list[str] = []
    executor.on_output = pieces.append
    result = executor.run("for i in range(3):\n    print('tick', i)")
    assert pieces == ["tick 0\n", "tick 1\n", "tick 2\n"] and result.logs == "".join(pieces)
    executor.on_output = None
    executor.run("print('quiet')")
    assert len(pieces) == 3
    with pytest.raises(TypeError, match="on_output"):
        executor.on_output = "not callable"  # type: ignore[assignment]
