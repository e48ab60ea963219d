"""Code and tool-call extraction from replies shaped like real model output."""

import pytest

from codeloop.errors import AgentParsingError
from codeloop.parsing import extract_code, extract_json_tool_calls


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Thought: add\n```python\nx = 1 + 1\nprint(x)\n```", "x = 1 + 1\nprint(x)"),
        ("```py\nfinal_answer(2)\n```<end_code>", "final_answer(2)"),
        ("Thought: tags\n<code>\ny = 3\n</code>", "y = 3"),
        ("Thought: cut at the stop sequence\n```python\nz = 4\nprint(z)", "z = 4\nprint(z)"),
        ("I think.\n```python\na = 1\n```\nThen:\n```python\nb = a + 1\n```", "a = 1\n\nb = a + 1"),
        ("Here:\n```\nq = [i for i in range(3)]\n```", "q = [i for i in range(3)]"),
        ("```Python\nw = 5\n```", "w = 5"),
    ],
)
def test_extracts_code_from_real_reply_shapes(reply: str, expected: str) -> None:
    assert extract_code(reply) == expected


def test_prefers_python_fence_over_output_fence() -> None:
    reply = "Output was:\n```\nnot code at all!\n```\n```python\nv = 9\n```"
    assert extract_code(reply) == "v = 9"


@pytest.mark.parametrize("reply", ["I will just answer: 42", "```\nsome prose, not python!\n```", ""])
def test_no_code_names_the_expected_format(reply: str) -> None:
    with pytest.raises(AgentParsingError) as info:
        extract_code(reply)
    assert "```python" in str(info.value)
    assert "final_answer" in str(info.value)


def test_json_tool_calls_in_text() -> None:
    text = (
        'Let me search. {"name": "web_search", "arguments": {"query": "tokyo"}} and {"tool": "f", "args": {}}'
    )
    calls = extract_json_tool_calls(text)
    assert [(c.name, c.arguments) for c in calls] == [("web_search", {"query": "tokyo"}), ("f", {})]


def test_json_tool_call_with_function_wrapper_and_string_arguments() -> None:
    calls = extract_json_tool_calls('{"function": {"name": "g", "arguments": "{\\"a\\": 1}"}}')
    assert calls[0].name == "g" and calls[0].arguments == {"a": 1}


def test_no_json_tool_call_is_a_parsing_error() -> None:
    with pytest.raises(AgentParsingError, match='"name": "tool_name"'):
        extract_json_tool_calls("The answer is {not json}")
