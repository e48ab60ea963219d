"""The shared static policy (`policy.py`) and output helpers (`output.py`), usable by every executor."""

from __future__ import annotations

import ast

import pytest

from codeloop.errors import ExecutionError
from codeloop.executors.local.policy import (
    DEFAULT_AUTHORIZED_IMPORTS,
    attribute_refusal,
    check_code,
    is_import_authorized,
    normalize_authorized_imports,
)
from codeloop.executors.output import OutputBuffer, format_exception, format_syntax_error, truncate_output

AUTHORIZED = normalize_authorized_imports()


def refused(code: str, authorized: frozenset[str] = AUTHORIZED) -> str:
    with pytest.raises(ExecutionError) as info:
        check_code(code, authorized)
    return str(info.value)


def test_returns_the_parsed_module_for_good_code() -> None:
    tree = check_code(
        "import math\nclass A:\n    def __init__(self):\n        super().__init__()\nmath.pi", AUTHORIZED
    )
    assert isinstance(tree, ast.Module) and len(tree.body) == 3


@pytest.mark.parametrize(
    ("module", "authorized", "allowed"),
    [
        ("math", {"math"}, True),
        ("os", {"math"}, False),
        ("xml.etree.ElementTree", {"xml.etree.ElementTree"}, True),
        ("xml.etree.ElementTree", {"xml"}, False),
        ("xml.etree.ElementTree", {"xml.*"}, True),
        ("xml", {"xml.*"}, True),
        ("xmlrpc", {"xml.*"}, False),
        ("anything.at.all", {"*"}, True),
    ],
)
def test_import_authorization(module: str, authorized: set[str], allowed: bool) -> None:
    assert is_import_authorized(module, authorized) is allowed


def test_default_allow_list_is_computation_only() -> None:
    assert {"collections", "datetime", "itertools", "math", "queue", "random", "re", "stat", "statistics", "time",
            "unicodedata"} <= set(DEFAULT_AUTHORIZED_IMPORTS)  # fmt: skip
    assert not {"os", "sys", "subprocess", "io", "socket", "pathlib", "importlib", "builtins"} & set(
        AUTHORIZED
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import os", "Import of 'os' is not allowed"),
        ("from subprocess import run", "Import of 'subprocess' is not allowed"),
        ("from . import sibling", "relative imports"),
        ("eval('1')", "'eval' is not available"),
        ("exec('x=1')", "'exec' is not available"),
        ("open('f')", "'open' is not available"),
        ("globals()", "'globals' is not available"),
        ("vars()", "'vars' is not available"),
        ("__import__('os')", "'__import__' is not allowed"),
        ("x = f.__globals__", "'__globals__' is not allowed"),
        ("x = ().__class__.__base__", "'__base__' is not allowed"),
        ("g.gi_frame", "'gi_frame' exposes interpreter internals"),
        ("tb.tb_frame.f_back", "exposes interpreter internals"),
        ("int.mro()", "'mro' exposes interpreter internals"),
        ("loop.run_in_executor(None, f)", "starts processes, threads or connections"),
        ("obj.__class__ = int", "assigning the dunder attribute '__class__'"),
        ("def f(__builtins__): pass", "parameter name '__builtins__'"),
        ("match x:\n    case C(__globals__=g):\n        pass", "pattern keyword"),
        ("ｅｖａｌ('1')", "'eval' is not available"),  # NFKC normalisation does not hide a name
    ],
)
def test_refusals_name_the_problem(code: str, expected: str) -> None:
    message = refused(code)
    assert message.startswith("Forbidden code on line ")
    assert expected.lower() in message.lower()


def test_user_definitions_of_forbidden_names_stay_usable() -> None:
    check_code("def compile(pattern):\n    return pattern\ncompile('x')", AUTHORIZED)
    check_code("eval_score = 1\nprint(eval_score)", AUTHORIZED)
    check_code("compile('x')", AUTHORIZED, defined_names={"compile"})  # defined in an earlier step
    assert "'compile' is not available" in refused("compile('x', 'f', 'exec')")


def test_dunder_methods_and_class_level_dunders_are_allowed() -> None:
    check_code(
        "class V:\n    __slots__ = ('x',)\n    __match_args__ = ('x',)\n    def __add__(self, o):\n        return self\n"
        "    __radd__ = __add__\n    def __del__(self):\n        pass\nif __name__ == '__main__':\n    v = V()\n",
        AUTHORIZED,
    )


def test_attribute_refusal_rules() -> None:
    assert attribute_refusal("value") is None
    assert attribute_refusal("_private") is None  # single underscore: checked at run time, not here
    assert attribute_refusal("__init__") is None
    assert attribute_refusal("__name__", store=True) is None
    assert attribute_refusal("__init__", store=True) is not None
    assert attribute_refusal("__subclasses__") is not None
    assert attribute_refusal("f_globals") is not None


def test_syntax_error_and_parse_failures() -> None:
    message = refused("def f(:\n    pass")
    assert message.startswith("SyntaxError on line 1")
    assert "def f(:" in message and "^" in message
    assert "null bytes" in refused("x = 1\x00")
    assert refused("(" * 300 + ")" * 300)  # nesting beyond the parser: a clear error, not a crash


def test_format_syntax_error_caret_position() -> None:
    try:
        compile("total = price *", "<agent-code>", "exec")
    except SyntaxError as err:
        text = format_syntax_error(err, "total = price *")
    lines = text.splitlines()
    assert lines[0] == "SyntaxError on line 1: invalid syntax"
    assert lines[1].strip() == "total = price *"
    assert (
        lines[2].index("^") == lines[1].index("*") + 1
    )  # just after the operator, where the operand is missing


def test_format_exception_keeps_only_agent_frames() -> None:
    code = "def inner():\n    raise KeyError('k')\ninner()"
    namespace: dict[str, object] = {}
    try:
        exec(compile(code, "<agent-code>", "exec"), namespace)
    except KeyError as err:
        text = format_exception(err, code)
    assert text.splitlines()[0] == "Error on line 2: raise KeyError('k')"
    assert "line 3, in <module>: inner()" in text
    assert text.endswith("KeyError: 'k'")
    assert format_exception(ValueError("x" * 10_000), "").count("x") <= 2_000


def test_truncate_output() -> None:
    assert truncate_output("short", 10) == "short"
    cut = truncate_output("a" * 50 + "b" * 50, 20)
    assert cut.startswith("a" * 10) and cut.endswith("b" * 10) and "80 characters cut" in cut
    with pytest.raises(ValueError):
        truncate_output("x", -1)


def test_output_buffer_is_bounded_and_exact_when_small() -> None:
    small = OutputBuffer(100)
    small.write("hello ")
    small.write("world")
    assert small.getvalue() == "hello world"
    big = OutputBuffer(10)
    for i in range(100_000):
        big.write(f"{i}\n")
    text = big.getvalue()
    assert text.startswith("0\n1\n2\n") and text.endswith("999\n") and "cut from the middle" in text
    assert big.total_written == sum(len(f"{i}\n") for i in range(100_000))
