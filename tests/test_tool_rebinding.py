"""Agent code may call tools and `final_answer` but not rebind them: both executors refuse such a step, unrun
(a CodeAgent first drops a top-level `def` or `import` of a tool, so the real one wins and the step runs).

A small model pasted the prompt's stub `def final_answer(answer): print(answer)`; run as is, it replaced the real
tool in the persistent namespace, tools returned None and the run could never end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.sandbox_support import needs_bwrap

from codeloop import CodeAgent, tool
from codeloop.errors import ExecutionError
from codeloop.executors import create_executor
from codeloop.testing import ScriptedModel

KINDS = ["local", pytest.param("sandbox", marks=needs_bwrap)]


@tool
def get_price(item: str) -> float:
    """Price of one item in euros.

    Args:
        item: The item's name.
    """
    return {"apple": 2.5, "pear": 4.0}[item]


def code(src: str) -> str:
    return f"Thought: next step.\n```python\n{src}\n```"


@pytest.mark.parametrize("kind", KINDS)
def test_a_pasted_final_answer_stub_is_skipped_and_the_real_one_ends_the_run(kind: str) -> None:
    # Refused, the real 1.5B model sent the same stub again at every step; skipped, the rest of its code runs
    # with the real tool (CodeAgent drops a top-level `def <tool>`; the executors still refuse any rebinding).
    stub = "print('ran')\ndef final_answer(answer):\n    print(answer)\nfinal_answer(42)"
    agent = CodeAgent(tools=[], model=ScriptedModel([code(stub)]), executor=kind, verbosity_level=0)
    try:
        assert agent.run("answer 42") == 42
        assert len(agent.memory.action_steps) == 1
    finally:
        agent.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_redefined_user_tool_is_skipped_and_the_real_tool_answers(kind: str) -> None:
    steps = [code("def get_price(x):\n    return 1\nprint(get_price('apple'))"),
             code("final_answer(get_price('apple'))")]  # fmt: skip
    agent = CodeAgent(tools=[get_price], model=ScriptedModel(steps), executor=kind, verbosity_level=0)
    try:
        assert agent.run("price of an apple") == 2.5
        first = agent.memory.action_steps[0].observations or ""
        assert first.startswith("2.5") and "definition of get_price was skipped" in first
    finally:
        agent.close()


@pytest.mark.parametrize("kind", KINDS)
def test_any_other_rebinding_of_a_tool_is_still_refused_unrun(kind: str) -> None:
    steps = [code("print('ran')\nget_price = lambda x: 1\nfinal_answer(get_price('apple'))"),
             code("final_answer(get_price('apple'))")]  # fmt: skip
    agent = CodeAgent(tools=[get_price], model=ScriptedModel(steps), executor=kind, verbosity_level=0)
    try:
        assert agent.run("price of an apple") == 2.5
        first = agent.memory.action_steps[0]
        assert first.error and "`get_price` is a tool provided to you" in first.error
        assert "ran" not in (first.observations or "")  # refused before anything ran
    finally:
        agent.close()


@pytest.fixture(params=KINDS)
def executor(request: pytest.FixtureRequest) -> Iterator[Any]:
    executor = create_executor(request.param)
    executor.send_tools({"get_price": get_price})
    try:
        yield executor
    finally:
        executor.close()


REFUSED = {
    "assignment": "get_price = 3",
    "augmented": "get_price += 1",
    "annotated": "get_price: int = 3",
    "tuple target": "a, get_price = 1, 2",
    "for target": "for get_price in range(2):\n    pass",
    "with as": "class C:\n    def __enter__(self):\n        return 1\n    def __exit__(self, *exc):\n        return False\n"
    "with C() as final_answer:\n    pass",
    "except as": "try:\n    1 / 0\nexcept ZeroDivisionError as get_price:\n    pass",
    "import as": "import math as get_price",
    "from import": "from math import floor as final_answer",
    "class": "class get_price:\n    pass",
    "async def": "async def final_answer(x):\n    return x",
    "def spaced": "def  final_answer (x):\n    return x",
    "class with a base": "class get_price(object):\n    pass",
    "line continuation": "print(get_price('pear'))\nget_price \\\n    = 3",
    "walrus": "(get_price := 1)",
    "walrus in comprehension": "[(get_price := i) for i in range(2)]",
    "global in a function": "def f():\n    global final_answer\n    final_answer = print\nf()",
    "delete": "del get_price",
    "nested block": "if True:\n    while True:\n        final_answer = 1\n        break",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_each_way_of_binding_a_tool_name_at_module_scope_is_refused(executor: Any, name: str) -> None:
    with pytest.raises(ExecutionError) as caught:
        executor.run(REFUSED[name])
    assert "is a tool provided to you" in str(caught.value)
    assert executor.run("final_answer(get_price('pear'))").output == 4.0  # the real tools are intact


def test_local_names_that_only_shadow_inside_a_function_or_class_are_allowed(executor: Any) -> None:
    allowed = """
def total(get_price, items):
    final_answer = sum(get_price(i) for i in items)
    return final_answer

def cheapest(items):
    get_price = min(items)
    return get_price

class Basket:
    get_price = 0

squares = [get_price for get_price in range(3)]
values = (total(lambda item: 1.0, ["apple", "pear"]), cheapest([3, 1]), Basket.get_price, squares, get_price("apple"))
print(values)
"""
    result = executor.run(allowed)
    assert "(2.0, 1, 0, [0, 1, 2], 2.5)" in result.logs
    assert executor.run("final_answer(get_price('pear'))").output == 4.0
