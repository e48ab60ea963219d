"""Numbers the model has seen (`codeloop.grounding`), the ToolCallingAgent's refusal of calls with invented
numbers, and the reminder of tools a run never called — each from a real 1.5B model's trace."""

from __future__ import annotations

from codeloop import CodeAgent, ToolCallingAgent, tool
from codeloop.grounding import NumberSources, numbers_in
from codeloop.testing import ScriptedModel


@tool
def get_order_items(order_id: str) -> list[dict[str, object]]:
    """The items of an order.

    Args:
        order_id: The order's id.
    """
    return [{"sku": "LMP-7", "quantity": 3}, {"sku": "CBL-2", "quantity": 5}]


@tool
def get_unit_price_usd(sku: str) -> float:
    """The price of one unit.

    Args:
        sku: The product code.
    """
    return {"LMP-7": 24.5, "CBL-2": 3.2}[sku]


def test_numbers_are_read_from_arguments_as_written() -> None:
    assert numbers_in({"expression": "(3 * 12.5 + 2 * 4.25) * 0.92"}) == ["3", "12.5", "2", "4.25", "0.92"]
    assert numbers_in({"sku": "A-1042", "n": 3.0, "flags": [True, None], "x": [1.5, {"y": 7}]}) == [
        "1042", "3", "1.5", "7",
    ]  # fmt: skip
    assert numbers_in("total 160.98.") == ["160.98"]  # a sentence's full stop is not a decimal point


def test_a_number_is_grounded_by_the_task_a_result_its_rounding_or_a_common_constant() -> None:
    sources = NumberSources(["Total of order A-1042? Round to 2 decimals.", "get_rate() -> 0.917431"])
    assert sources.ungrounded({"e": "1042 * 0.917431"}) == []
    assert sources.ungrounded({"e": "round(x * 0.92, 2)"}) == []  # the rate as the model rounded it
    assert sources.ungrounded({"e": "x * 60 / 100 + 3600"}) == []  # the clock and percentages
    assert sources.ungrounded({"e": "(3 * 12.5 + 4.25) * 0.87"}) == ["12.5", "4.25", "0.87"]
    # refused once, accepted when sent again: a unit conversion is knowledge, not data
    assert sources.ungrounded({"e": "x * 0.87"}) == []
    assert sources.ungrounded({"e": "x * 0.4536"}) == ["0.4536"]


def test_a_tool_calling_plan_with_invented_numbers_runs_only_its_grounded_calls() -> None:
    replies = [
        # the 1.5B model's first reply: the lookup, then arithmetic on prices it has not fetched
        '{"name": "get_order_items", "arguments": {"order_id": "A-1042"}}\n'
        '{"name": "calculate", "arguments": {"expression": "3 * 12.5 + 5 * 4.25"}}',
        '{"name": "get_unit_price_usd", "arguments": {"sku": "LMP-7"}}\n'
        '{"name": "get_unit_price_usd", "arguments": {"sku": "CBL-2"}}',
        '{"name": "calculate", "arguments": {"expression": "3 * 24.5 + 5 * 3.2"}}',
        '{"name": "final_answer", "arguments": {"answer": 89.5}}',
    ]
    agent = ToolCallingAgent(
        tools=[get_order_items, get_unit_price_usd], model=ScriptedModel(replies), calculator=True,
        grounded_calls=True, store=None, verbosity_level=0,
    )  # fmt: skip
    assert agent.run("What is the total of order A-1042 in USD?") == 89.5
    first, _, third, _ = agent.memory.action_steps
    assert "get_order_items(order_id='A-1042') -> [{'sku': 'LMP-7'" in first.observations
    assert "calculate(expression='3 * 12.5 + 5 * 4.25') -> Error: not run: 12.5, 4.25 appear in no tool" in (
        first.observations
    )
    assert third.observations == "calculate(expression='3 * 24.5 + 5 * 3.2') -> 89.5"


def test_grounded_calls_are_off_by_default() -> None:
    replies = [
        '{"name": "calculate", "arguments": {"expression": "3 * 12.5"}}',
        '{"name": "final_answer", "arguments": {"answer": 37.5}}',
    ]
    agent = ToolCallingAgent(
        tools=[], model=ScriptedModel(replies), calculator=True, store=None, verbosity_level=0
    )
    assert agent.run("What is 3 times 12.5?") == 37.5
    assert agent.memory.action_steps[0].observations == "calculate(expression='3 * 12.5') -> 37.5"


def test_a_blind_answer_that_skipped_a_tool_is_held_back_once_naming_it() -> None:
    replies = [
        # the model typed the prices itself instead of calling the price tool
        "```python\nitems = get_order_items('A-1042')\nfinal_answer(3 * 12.5 + 5 * 4.25)\n```",
        "```python\nprices = {i['sku']: get_unit_price_usd(i['sku']) for i in items}\nprint(prices)\n```",
        "```python\nfinal_answer(sum(i['quantity'] * prices[i['sku']] for i in items))\n```",
    ]
    agent = CodeAgent(
        tools=[get_order_items, get_unit_price_usd], model=ScriptedModel(replies), executor="local",
        remind_unused_tools=True, store=None, verbosity_level=0,
    )  # fmt: skip
    assert agent.run("What is the total of order A-1042 in USD?") == 89.5
    held = agent.memory.action_steps[0].error
    assert held is not None
    assert "final_answer(58.75) was not accepted yet: you have not called get_unit_price_usd" in str(held)


def test_the_reminder_is_given_once_and_an_insisting_answer_stands() -> None:
    replies = ["```python\nfinal_answer(get_order_items('A-1')[0]['quantity'])\n```"] * 2
    agent = CodeAgent(
        tools=[get_order_items, get_unit_price_usd], model=ScriptedModel(replies), executor="local",
        remind_unused_tools=True, store=None, verbosity_level=0,
    )  # fmt: skip
    assert agent.run("How many of the first item does order A-1 have?") == 3
    assert len(agent.memory.action_steps) == 2


def test_the_reminder_is_off_for_large_toolboxes_and_when_turned_off() -> None:
    script = ["```python\nfinal_answer(get_order_items('A-1')[0]['quantity'])\n```"]
    off = CodeAgent(  # the default
        tools=[get_order_items, get_unit_price_usd], model=ScriptedModel(script), executor="local",
        store=None, verbosity_level=0,
    )  # fmt: skip
    assert off.run("How many?") == 3 and len(off.memory.action_steps) == 1

    def make(i: int) -> object:
        @tool
        def spare(x: str) -> str:
            """A tool this task does not need.

            Args:
                x: anything
            """
            return x

        spare.name = f"spare_{i}"
        return spare

    many = CodeAgent(
        tools=[get_order_items, *(make(i) for i in range(6))], model=ScriptedModel(script), executor="local",
        remind_unused_tools=True, store=None, verbosity_level=0,
    )  # fmt: skip
    assert many.run("How many?") == 3 and len(many.memory.action_steps) == 1


def test_a_step_repeating_the_previous_failing_code_is_told_it_will_fail_again() -> None:
    failing = "```python\nd = {'a': 1}\nprint(d['A'])\n```"
    replies = [failing, failing, "```python\nfinal_answer(d['a'])\n```"]
    agent = CodeAgent(tools=[], model=ScriptedModel(replies), executor="local", store=None, verbosity_level=0)
    assert agent.run("What is d's value?") == 1
    first, second, _ = agent.memory.action_steps
    assert "KeyError" in str(first.error) and "it will fail again" not in str(first.error)
    assert "same code as your previous step, and it failed the same way" in str(second.error)


def test_a_tool_calling_reply_repeating_the_previous_calls_is_told_nothing_changed() -> None:
    bad = '{"name": "calculate", "arguments": {"expression": "get_x() * 2"}}'
    replies = [bad, bad, '{"name": "final_answer", "arguments": {"answer": 4}}']
    agent = ToolCallingAgent(
        tools=[], model=ScriptedModel(replies), calculator=True, store=None, verbosity_level=0
    )
    assert agent.run("Double x.") == 4
    first, second, _ = agent.memory.action_steps
    assert (
        "is not allowed" in first.observations
        and "same calls as your previous reply" not in first.observations
    )
    assert second.observations.endswith(
        "(These are the same calls as your previous reply, with the same results. Sending them again will not "
        "help: use\nthe results above, change the calls, or call final_answer.)"
    )
