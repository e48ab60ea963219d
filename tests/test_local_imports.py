"""LocalExecutor imports: what a module's own native code imports for itself works, while agent code still gets only
what was authorized — through `import`, `sys.modules`, `importlib` or the `builtins` module alike; sympy's string
evaluation is no way around it; and `sys.stdout` (with its `buffer`) writes into the step's output."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from codeloop.errors import ExecutionError
from codeloop.executors.local import LocalExecutor


def run(code: str, imports: tuple[str, ...] = (), **kwargs: Any) -> Any:
    with LocalExecutor(additional_authorized_imports=imports, **kwargs) as executor:
        return executor.run(code)


def refused(code: str, imports: tuple[str, ...] = ()) -> str:
    with pytest.raises(ExecutionError) as info:
        run(code, imports)
    return str(info.value)


def test_strptime_works_with_the_default_imports() -> None:
    # datetime's and time's C code import _strptime for themselves
    code = "import datetime, time\n(datetime.datetime.strptime('2024-01-02', '%Y-%m-%d').day, time.strptime('2024', '%Y').tm_year)"
    assert run(code).output == (2, 2024)


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy is not installed")
def test_an_authorized_package_may_import_its_own_internals() -> None:
    code = "import numpy as np\n(int(np.arange(10).sum()), float(np.array([1.5, 2.0]).mean()))"
    assert run(code, ("numpy",)).output == (45, 1.75)
    # ... while agent code still gets only what was authorized
    assert "Import of 'numpy._core._methods' is not allowed" in refused(
        "import numpy._core._methods", ("numpy",)
    )


@pytest.mark.parametrize(
    ("code", "imports", "expected"),
    [
        ("import sys\nsys.modules['os']", ("sys",), "'os' is not among the modules available to agent code"),
        (
            "import sys\nsys.modules['builtins'].open",
            ("sys",),
            "'builtins' is not among the modules available",
        ),
        (
            "import sys\nsys.modules.get('posix') or sys.modules['subprocess']",
            ("sys",),
            "'subprocess' is not among",
        ),
        ("import sys\nsys.meta_path", ("sys",), "has no attribute 'meta_path'"),
        ("import importlib\nimportlib.import_module('os')", ("importlib",), "Import of 'os' is not allowed"),
        (
            "import importlib\nimportlib.import_module('sys')",
            ("importlib",),
            "Import of 'sys' is not allowed",
        ),
        ("import importlib\nimportlib.find_loader('os')", ("importlib",), "has no attribute 'find_loader'"),
        ("import builtins\nbuiltins.open", ("builtins",), "has no attribute 'open'"),
        ("import builtins\nbuiltins.getattr(len, '__self__')", ("builtins",), "'__self__' is not allowed"),
        ("import builtins\nbuiltins.__import__('os')", ("builtins",), "'__import__' is not allowed"),
    ],
)
def test_sys_modules_importlib_and_builtins_hand_out_only_what_was_authorized(
    code: str, imports: tuple[str, ...], expected: str
) -> None:
    assert expected in refused(code, imports)


def test_sys_modules_and_importlib_still_give_authorized_modules() -> None:
    code = (
        "import sys, importlib\n"
        "(sys.modules['math'].sqrt(16), importlib.import_module('json').dumps([1]), 'os' in sys.modules, "
        "'math' in sys.modules, 'os' in list(sys.modules))"
    )
    assert run(code, ("sys", "importlib")).output == (4.0, "[1]", False, True, False)


sympy_only = pytest.mark.skipif(importlib.util.find_spec("sympy") is None, reason="sympy is not installed")


@sympy_only
@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "getattr(x, 'func')",
        "lambdify(x, 'os')",
        "(lambda: 1)()",
        "Symbol('x').func.mro()",
        "'{0.__class__}'.format(1)",
    ],
)
def test_sympy_refuses_strings_that_are_not_plain_math(expression: str) -> None:
    for call in ("sympy.sympify", "sympy.simplify", "sympy.S", "sympy.parse_expr"):
        message = refused(f"import sympy\n{call}({expression!r})", ("sympy",))
        assert "sympy evaluates strings with Python's eval()" in message, (call, message)


@sympy_only
def test_sympy_still_parses_math_and_host_code_is_unaffected() -> None:
    import sympy

    code = (
        "import sympy\nx = sympy.Symbol('x')\n"
        "(str(sympy.sympify('x**2 + sin(y)')), str(sympy.parse_expr('1+1', evaluate=False)), "
        "str(sympy.simplify(x**2 + 2*x + 1 - (x + 1)**2)), host_parse('y + y'))"
    )
    with LocalExecutor(additional_authorized_imports=["sympy"]) as executor:
        executor.send_tools({"host_parse": lambda text: str(sympy.sympify(text))})  # a tool is host code
        assert executor.run(code).output == ("x**2 + sin(y)", "1 + 1", "0", "2*y")
    assert str(sympy.sympify("Symbol('z').func")) == "<class 'sympy.core.symbol.Symbol'>"


def test_sys_stdout_and_its_buffer_write_into_the_step_output() -> None:
    streamed: list[str] = []
    code = (
        "import sys\n"
        "sys.stdout.buffer.write(b'bytes \\xc3')\n"
        "sys.stdout.buffer.write(b'\\xa9\\n')\n"  # a UTF-8 sequence split across two writes
        "sys.stdout.write('text\\n')\n"
        "print('to stderr', file=sys.stderr)\n"
        "sys.stdout.flush()\n"
        "sys.stdout.buffer.flush()"
    )
    with LocalExecutor(additional_authorized_imports=["sys"]) as executor:
        executor.on_output = streamed.append
        result = executor.run(code)
    assert result.logs == "bytes é\ntext\nto stderr\n"
    assert "".join(streamed) == result.logs
