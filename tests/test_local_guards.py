"""LocalExecutor's run-time guards: vetted attribute access, format strings, module proxies, match patterns,
agent code refused outside its steps, thread state kept apart from the host."""

from __future__ import annotations

import decimal
import gc
import random
import time
from typing import Any

import pytest

from codeloop.errors import ExecutionError
from codeloop.executors.local import LocalExecutor
from codeloop.executors.local.guards import OutsideStepError


@pytest.fixture
def executor() -> Any:
    with LocalExecutor(
        timeout=1.0, additional_authorized_imports=["warnings", "logging", "asyncio", "traceback"]
    ) as made:
        yield made


def error_of(executor: LocalExecutor, code: str) -> str:
    with pytest.raises(ExecutionError) as info:
        executor.run(code)
    return str(info.value)


def host_function() -> None:
    """A host function: its __globals__ are this test module's namespace."""


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("getattr(pivot, '_' * 2 + 'globals' + '_' * 2)", "'__globals__' is not allowed"),
        ("object.__getattribute__(pivot, '_' * 2 + 'globals' + '_' * 2)", "'__globals__' is not allowed"),
        ("import operator\noperator.attrgetter('__code__')(pivot)", "'__code__' is not allowed"),
        (
            "import operator\noperator.methodcaller('__reduce_ex__', 2)(pivot)",
            "'__reduce_ex__' is not allowed",
        ),
        ("type.__dict__['_' * 2 + 'subclasses' + '_' * 2]", "KeyError"),
        ("'{0.__globals__}'.format(pivot)", "format string refused"),
        ("str.format('{0.__class__}', 1)", "format string refused"),
        ("'{x.__init__}'.format_map({'x': 1})", "format string refused"),
        ("'{0:{1.__class__}}'.format(1, 2)", "format string refused"),
        ("import random\nrandom._os", "has no attribute '_os'"),
        ("import queue\nqueue.threading", "has no attribute 'threading'"),
        ("import warnings\nwarnings.catch_warnings()._module.sys", "has no attribute 'sys'"),
        ("import string\nstring.Formatter", "has no attribute 'Formatter'"),
        ("import typing\ntyping.get_type_hints", "has no attribute 'get_type_hints'"),
        ("import traceback\ntraceback.walk_stack", "has no attribute 'walk_stack'"),
        ("import logging\nlogging.FileHandler", "has no attribute 'FileHandler'"),
        ("import asyncio\nasyncio.create_subprocess_shell", "starts processes"),
        ("from json import decoder", "cannot import name 'decoder'"),
        ("setattr(pivot, '_' * 2 + 'code' + '_' * 2, None)", "'__code__' is not allowed"),
        (
            "class A: pass\nobject.__setattr__(A(), '_' * 2 + 'class' + '_' * 2, int)",
            "'__class__' is not allowed",
        ),
    ],
)
def test_runtime_refusals(executor: LocalExecutor, code: str, expected: str) -> None:
    executor.send_variables({"pivot": host_function})
    assert expected in error_of(executor, code)


def test_allowed_reflection_still_works(executor: LocalExecutor) -> None:
    code = (
        "class Point:\n    def __init__(self, x):\n        self._x = x\n"
        "p = Point(3)\n"
        "(getattr(p, '_x'), hasattr(p, '_y'), p.__dict__, type(p).__name__, p.__class__.__qualname__, "
        "sorted(k for k in Point.__dict__ if not k.startswith('__')), '{0._x}/{0.__class__.__name__}'.format(p) "
        "if False else '{0._x}'.format(p) if False else '{}'.format(p._x))"
    )
    assert executor.run(code).output == (3, False, {"_x": 3}, "Point", "Point", [], "3")


def test_private_attribute_holding_a_module_becomes_its_proxy_or_is_refused(executor: LocalExecutor) -> None:
    # warnings is authorized here: its private reference to itself comes back as the restricted proxy
    assert executor.run("import warnings\nrepr(warnings.catch_warnings()._module)").output == (
        "<module 'warnings' (restricted)>"
    )
    import os

    class Holder:
        pass

    holder = Holder()
    holder._mod = os  # type: ignore[attr-defined]
    executor.send_variables({"holder": holder})
    assert "is the module 'os', which agent code may not use" in error_of(executor, "holder._mod")
    assert "is the module 'os'" in error_of(executor, "getattr(holder, '_mod')")


def test_attribute_error_obj_is_vetted(executor: LocalExecutor) -> None:
    code = "import random\ntry:\n    random.missing\nexcept AttributeError as err:\n    seen = err.obj\nrepr(seen)"
    assert executor.run(code).output == "<module 'random' (restricted)>"


def test_match_class_patterns_cannot_read_forbidden_attributes(executor: LocalExecutor) -> None:
    executor.send_variables({"pivot": host_function})
    code = (
        "import collections.abc\n"
        "class Spoof(collections.abc.Hashable):\n    __match_args__ = ('_' * 2 + 'globals' + '_' * 2,)\n"
        "    def __hash__(self):\n        return 0\n"
        "Spoof.register(type(pivot))\n"
        "match pivot:\n    case Spoof(g):\n        print(g)\n"
    )
    assert "matches positional patterns on attribute '__globals__'" in error_of(executor, code)
    ok = "class P:\n    __match_args__ = ('x',)\n    def __init__(self):\n        self.x = 1\nmatch P():\n    case P(v):\n        matched = v\nmatched"
    assert executor.run(ok).output == 1


@pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning"
)  # the refused __del__, reported
def test_agent_code_does_not_run_for_the_host_after_the_step(executor: LocalExecutor) -> None:
    result = executor.run(
        "class Bomb:\n    def __repr__(self):\n        while True:\n            pass\n    __str__ = __repr__\n"
        "    def __del__(self):\n        while True:\n            pass\n"
        "b = Bomb()\nfinal_answer(b)"
    )
    assert result.is_final_answer
    assert result.output_repr == "<repr() did not finish within the step's time limit>"
    start = time.monotonic()
    # the host gets the text rendered within the step instead of running the spinning __repr__ again
    assert repr(result.output) == str(result.output) == result.output_repr
    with pytest.raises(OutsideStepError):
        result.output.__del__()
    executor.close()
    del result
    gc.collect()  # the __del__ is refused at once instead of spinning in the host
    assert time.monotonic() - start < 1


def test_random_seeding_does_not_touch_the_host_generator(executor: LocalExecutor) -> None:
    state = random.getstate()
    executor.run("import random\nrandom.seed(1234)\nrandom.random()")
    assert random.getstate() == state
    first = executor.run("random.seed(7)\nrandom.random()").output
    assert first == random.Random(7).random()


def test_decimal_precision_is_capped_and_host_context_untouched(executor: LocalExecutor) -> None:
    host_precision = decimal.getcontext().prec
    executor.run("import decimal\ndecimal.getcontext().prec = 6")
    assert decimal.getcontext().prec == host_precision
    assert executor.run("str(decimal.Decimal(1) / decimal.Decimal(7))").output == "0.142857"
    assert "capped" in error_of(executor, "decimal.getcontext().prec = 10 ** 9")
    assert "capped" in error_of(executor, "with decimal.localcontext() as c:\n    c.prec = 10 ** 9")


def test_traceback_printing_goes_to_the_step_output(executor: LocalExecutor) -> None:
    result = executor.run(
        "import traceback\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n    traceback.print_exc()"
    )
    assert "ZeroDivisionError: division by zero" in result.logs


def test_module_proxies_are_per_executor_and_do_not_patch_the_host() -> None:
    import json

    with LocalExecutor() as one, LocalExecutor() as two:
        one.run("import json\njson.dumps = lambda *a, **k: 'patched'")
        assert one.run("json.dumps(1)").output == "patched"
        assert two.run("import json\njson.dumps(1)").output == "1"
    assert json.dumps(1) == "1"


def test_super_cannot_reach_past_the_capped_decimal_context() -> None:
    # Without an address-space limit, the base class's copy() handed out an uncapped context whose one division
    # ran for seconds and took GBs (payload 227); super() past a sealed class is refused, super() elsewhere works.
    with LocalExecutor(additional_authorized_imports=["decimal"]) as ex:
        with pytest.raises(ExecutionError, match="super\\(\\) past 'Context' is not allowed"):
            ex.run("import decimal\nc = decimal.getcontext()\nplain = super(type(c), c).copy()")
        code = (
            "import decimal\n"
            "class Mine(decimal.Context):\n"
            "    def copy(self):\n"
            "        return super().copy()\n"
            "class A:\n"
            "    def f(self):\n"
            "        return 1\n"
            "class B(A):\n"
            "    def f(self):\n"
            "        return super().f() + 1\n"
            "print(B().f(), Mine(prec=5).copy().prec)"
        )
        assert ex.run(code).logs.strip() == "2 5"
