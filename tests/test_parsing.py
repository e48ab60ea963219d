"""Code and tool-call extraction from replies shaped like real model output."""

import pytest
from tests.sandbox_support import needs_bwrap

from codeloop.errors import AgentParsingError
from codeloop.parsing import TOOL_CALL_FORMAT_HELP, extract_code, extract_json_tool_calls


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
    with pytest.raises(AgentParsingError, match='"name": <tool name>'):
        extract_json_tool_calls("The answer is {not json}")


def test_calls_are_not_picked_out_of_malformed_json() -> None:
    # The outer value is broken (trailing comma); the call nested in it must not run on its own.
    text = '{"calls": [{"name": "multiply", "arguments": {"a": 6, "b": 7}},]}'
    with pytest.raises(AgentParsingError) as info:
        extract_json_tool_calls(text)
    message = str(info.value)
    assert "not valid JSON" in message and "nothing was run" in message
    assert '{"calls": [{"name": "multiply"' in message  # quotes the fragment
    assert '"name": <tool name>' in message  # and shows the expected form


def test_a_broken_call_beside_a_good_one_runs_neither() -> None:
    text = '{"name": "f", "arguments": {}}\n{"name": "g", "arguments": {"x": 1}'
    with pytest.raises(AgentParsingError, match="Expecting"):
        extract_json_tool_calls(text)


def test_braces_in_prose_do_not_block_a_good_call() -> None:
    calls = extract_json_tool_calls('The set {1, 2} is small. {"name": "f", "arguments": {"x": 1}}')
    assert [(c.name, c.arguments) for c in calls] == [("f", {"x": 1})]


def test_the_format_help_holds_no_runnable_call() -> None:
    with pytest.raises(AgentParsingError):
        extract_json_tool_calls(TOOL_CALL_FORMAT_HELP)
    assert "alone" in TOOL_CALL_FORMAT_HELP


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        ('{"answer": [1, 2]}', [1, 2]),
        ("Final answer([1, 2])", [1, 2]),
        ('final_answer(answer="Paris")', "Paris"),
        ("Thought: done.\nFinal answer(['a', 'b'])", ["a", "b"]),
        ('The result is in. {"answer": {"total": 3.5}}', {"total": 3.5}),
    ],
)
def test_a_clear_final_answer_without_a_name_is_a_final_answer_call(reply: str, answer: object) -> None:
    calls = extract_json_tool_calls(reply)
    assert [(c.name, c.arguments) for c in calls] == [("final_answer", {"answer": answer})]


@pytest.mark.parametrize(
    "reply",
    [
        "final_answer(result)",  # a variable we cannot see
        '{"answer": 1, "note": "x"}',  # not only an answer
        '{"answer": 1} {"answer": 2}',  # which one?
        "Final answer([1, 2]) or maybe final_answer([3])",
    ],
)
def test_an_unclear_final_answer_is_still_a_parsing_error(reply: str) -> None:
    with pytest.raises(AgentParsingError):
        extract_json_tool_calls(reply)


def test_a_bare_answer_beside_a_real_call_is_not_taken() -> None:
    calls = extract_json_tool_calls('{"name": "f", "arguments": {}} {"answer": 3}')
    assert [c.name for c in calls] == ["f"]


def test_a_broken_final_answer_beside_good_calls_is_kept_as_a_final_answer_with_its_raw_text() -> None:
    text = '{"name": "f", "arguments": {}}\n{"name": "final_answer", "arguments": {"answer": total}}'
    calls = extract_json_tool_calls(text)
    assert [c.name for c in calls] == ["f", "final_answer"]
    assert calls[1].arguments == '{"name": "final_answer", "arguments": {"answer": total}}'


def test_a_broken_fragment_naming_another_tool_beside_final_answer_still_runs_nothing() -> None:
    text = '{"name": "f", "arguments": {}}\n{"calls": [{"name": "g", "arguments": {}}, {"name": "final_answer"},]}'
    with pytest.raises(AgentParsingError, match="nothing was run"):
        extract_json_tool_calls(text)


def test_imports_and_definitions_of_given_tools_are_dropped_and_other_code_is_kept() -> None:
    from codeloop.parsing import drop_tool_redefinitions

    tools = {"get_d", "get_e", "final_answer"}
    code = "from tools import get_d\nfrom functions import (\n    get_d,\n    get_e,\n)\nx = get_d(1)\n"
    assert drop_tool_redefinitions(code, tools) == (
        "pass\npass\n\n\n\nx = get_d(1)\n",
        ["get_d", "get_d", "get_e"],
    )
    pasted = "@cache\ndef final_answer(answer):\n    print(answer)\n\nfinal_answer(get_e())\n"
    assert drop_tool_redefinitions(pasted, tools) == ("pass\n\n\n\nfinal_answer(get_e())\n", ["final_answer"])
    for kept in (
        "from tools import get_d as g\nx = g(1)",  # renames the tool: the executor judges it
        "from tools import get_d, helper\nx = get_d(1)",  # imports something else too
        "from tools import get_d; x = get_d(1)",  # more than the import on the line
        "import math\nx = math.pi",
        "def f():\n    from tools import get_d\n    return get_d(1)",  # not at module level
        "get_d = lambda: 1",  # any other binding: the executor refuses it
        "from tools import get_d\nx = (",  # a syntax error is left for the executor to report
    ):
        assert drop_tool_redefinitions(kept, tools) == (kept, [])


@pytest.mark.parametrize("kind", ["local", pytest.param("sandbox", marks=needs_bwrap)])
def test_a_code_agent_runs_a_step_that_imports_or_redefines_its_tool(kind: str) -> None:
    # The real model wrote `from tools import get_road_distance_km` at every step; every step was refused.
    from codeloop import CodeAgent, tool
    from codeloop.testing import ScriptedModel

    @tool
    def get_road_distance_km(a: str, b: str) -> float:
        """Road distance.

        Args:
            a: From.
            b: To.
        """
        return 10.5

    step = "Thought: go.\n```python\nfrom tools import get_road_distance_km\nfinal_answer(get_road_distance_km('A', 'B'))\n```"
    agent = CodeAgent(
        tools=[get_road_distance_km], model=ScriptedModel([step]), executor=kind, verbosity_level=0
    )
    with agent:
        assert agent.run("t") == 10.5
