"""One-line digests of old CodeAgent steps (codeloop.step_digest): what a condensed step still tells the model."""

from __future__ import annotations

import json

from codeloop.memory import ActionStep
from codeloop.step_digest import digest_code_step, thought_of


def _step(
    reply: str, code: str | None, observations: str | None = "", error: str | None = None
) -> ActionStep:
    return ActionStep(model_output=reply, code_action=code, observations=observations, error=error)


def test_a_step_shows_its_calls_with_arguments_the_names_it_set_and_a_long_outputs_size() -> None:
    code = 'orders = list_orders("C004")\nprint(get_customer("C004"))\nprint(orders)'
    step = _step(f"Thought: Next customer.\n```python\n{code}\n```", code, "x" * 1_300)
    assert digest_code_step(step, 9) == (
        "9. Called list_orders('C004'), get_customer('C004'); set orders; printed 1,300 characters."
    )


def test_a_short_output_is_kept_whole_and_a_changed_key_is_named() -> None:
    code = (
        'late = [o for o in orders if o["status"] == "late"]\ncredits["C001"] = len(late)\nprint(len(late))'
    )
    step = _step(f"```python\n{code}\n```", code, "C001: 2 late of 8 orders\n")
    # `o` (the comprehension's own variable) and builtins (len, print) are not listed
    assert digest_code_step(step, 3) == "3. Set late, credits['C001']; printed C001: 2 late of 8 orders."


def test_a_failed_step_gives_the_exception_line_and_not_the_names_it_may_not_have_set() -> None:
    error = (
        'Error on line 1: late = [o for o in orders if o["state"] == "late"]\n'
        "Traceback (agent code, most recent call last):\n  line 1, in <module>: ...\nKeyError: 'state'\n"
        "Variables defined now: orders (list, 8 items)"
    )
    code = 'late = [o for o in orders if o["state"] == "late"]\nsave(late)'
    step = _step(f"Thought: I compute it.\n<code>\n{code}\n</code>", code, "", error)
    assert digest_code_step(step, 7) == "7. Called save(late); failed: KeyError: 'state'."


def test_the_thought_stands_in_when_the_code_calls_and_sets_nothing() -> None:
    step = _step("Thought: I look at the data again. It was long.\n```python\nprint(orders[:2])\n```",
                 "print(orders[:2])", "[...]")  # fmt: skip
    assert digest_code_step(step, 4) == "4. I look at the data again. Printed [...]."
    structured = json.dumps({"thought": "Check the sum.", "code": "print(1 + 1)"})
    assert digest_code_step(_step(structured, "print(1 + 1)", "2"), 5) == "5. Check the sum. Printed 2."
    assert thought_of(_step(structured, "print(1 + 1)")) == "Check the sum."


def test_functions_defined_are_named_and_calls_inside_them_are_not_counted_as_made() -> None:
    code = "def total(rows):\n    return helper(rows)\n\nresult = total(load())\n"
    step = _step(f"```python\n{code}```", code, "")
    assert digest_code_step(step, 2) == "2. Called total(load()), load(); set total, result."


def test_code_that_does_not_parse_and_a_reply_without_code_still_give_a_line() -> None:
    broken = _step(
        "Thought: Try this.\n```python\nx = (\n```", "x = (", None, "SyntaxError: '(' was never closed"
    )
    assert digest_code_step(broken, 6) == "6. Try this. Failed: SyntaxError: '(' was never closed."
    no_code = _step("I think the answer is 4.", None, None, "No code block was found in your reply.")
    assert (
        digest_code_step(no_code, 8)
        == "8. I think the answer is 4. Failed: No code block was found in your reply."
    )


def test_long_calls_and_many_names_are_shortened() -> None:
    code = "\n".join(f"v{i} = fetch_everything_about('{'a' * 40}', {i})" for i in range(7))
    line = digest_code_step(_step(f"```python\n{code}\n```", code, ""), 1)
    assert line == "1. Called fetch_everything_about(...); set v0, v1, v2, v3, v4 and 2 more."
