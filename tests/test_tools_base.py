"""The Tool base class: subclass styles, definition checks, sync/async calls, setup, final_answer."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from codeloop.errors import AgentToolCallError, ToolDefinitionError
from codeloop.tools import FinalAnswerTool, Tool, tool


class Weather(Tool):
    name = "weather"
    description = "Forecast for a city."
    inputs = {
        "city": {"type": "string", "description": "City name."},
        "days": {"type": "integer", "description": "Days ahead.", "nullable": True},
        "units": {"type": "string", "description": "Units.", "enum": ["C", "F"], "default": "C"},
    }
    output_type = "object"

    def forward(self, city: str, days: int | None = None, units: str = "C") -> dict[str, Any]:
        return {"city": city, "days": days, "units": units}


def test_handwritten_inputs_subclass() -> None:
    weather = Weather()
    assert weather.required_inputs == ["city"]
    assert weather.parameters_schema == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name."},
            "days": {"type": ["integer", "null"], "description": "Days ahead."},
            "units": {"type": "string", "description": "Units.", "enum": ["C", "F"], "default": "C"},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    assert weather("Paris") == {"city": "Paris", "days": None, "units": "C"}
    assert weather(city="Oslo", days=2) == {"city": "Oslo", "days": 2, "units": "C"}
    assert weather.validate_arguments({"city": "Rome", "days": "4", "units": "F"}) == {
        "city": "Rome",
        "days": 4,
        "units": "F",
    }
    assert weather.validate_arguments({"city": "Rome", "days": None}) == {"city": "Rome", "days": None}
    with pytest.raises(AgentToolCallError) as info:
        weather.validate_arguments({"units": "K", "city": 5})
    assert "'units'" in str(info.value) and "one of 'C', 'F'" in str(info.value)
    assert "'city': Input should be a valid string" in str(info.value)
    assert weather.to_code_prompt() == (
        "def weather(city: str, days: int | None = None, units: Literal['C', 'F'] = 'C') -> dict:\n"
        '    """Forecast for a city.\n'
        "\n"
        "    Args:\n"
        "        city: City name.\n"
        "        days: Days ahead.\n"
        "        units: Units.\n"
        '    """'
    )
    # the class attribute is not mutated by instantiation
    assert "default" not in Weather.inputs["days"]


def test_forward_default_makes_input_optional() -> None:
    class Greeter(Tool):
        name = "greet"
        description = "Greet someone."
        inputs = {"who": {"type": "string", "description": "Name."}}
        output_type = "string"

        def forward(self, who: str = "world") -> str:
            return f"hello {who}"

    greeter = Greeter()
    assert greeter.inputs["who"]["default"] == "world"
    assert greeter.required_inputs == []
    assert greeter() == "hello world"
    assert "def greet(who: str = 'world') -> str:" in greeter.to_code_prompt()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"inputs": {"a": {"type": "string", "description": "A."}}, "forward": lambda self, b: b},
            "input 'a' has no matching parameter in forward",
        ),
        (
            {"inputs": {"a": {"type": "string", "description": "A."}}, "forward": lambda self, a, b: a},
            "forward's parameter 'b' is not described in `inputs`",
        ),
        (
            {"inputs": {"a": {"type": "string"}}, "forward": lambda self, a: a},
            "inputs['a'] has no 'description'",
        ),
        (
            {"inputs": {"a": {"description": "A."}}, "forward": lambda self, a: a},
            "inputs['a'] has no 'type'",
        ),
        (
            {"inputs": {"a": {"type": "str", "description": "A."}}, "forward": lambda self, a: a},
            "inputs['a'] has type 'str'",
        ),
        (
            {
                "inputs": {"a": {"type": "string", "description": "A.", "nullable": True}},
                "forward": lambda self, a: a,
            },
            "input 'a' is optional (nullable or with a default) but forward's parameter 'a' has no default",
        ),
        (
            {"inputs": {}, "forward": lambda self: 1, "output_type": "str"},
            "output_type 'str' is not one of",
        ),
        ({"inputs": {}}, "must define a `forward` method"),
        ({"inputs": {}, "forward": lambda self: 1, "name": "bad name"}, "not a valid Python identifier"),
    ],
)
def test_subclass_definition_errors(body: dict[str, Any], fragment: str) -> None:
    namespace = {"description": "Does things.", **body}
    if "forward" in namespace:
        namespace["forward"] = namespace["forward"]
    cls = type("Broken", (Tool,), namespace)
    with pytest.raises(ToolDefinitionError) as info:
        cls()
    assert fragment in str(info.value)
    assert "Broken" in str(info.value)


def test_subclass_without_inputs_reads_forward() -> None:
    class ConvertUnits(Tool):
        """Convert a length."""

        def forward(self, meters: float, unit: str = "ft") -> float:
            """Convert meters to another unit.

            Args:
                meters: Length in meters.
                unit: Target unit.
            """
            return meters * 3.28084 if unit == "ft" else meters

    tool_ = ConvertUnits()
    assert tool_.name == "convert_units"
    assert tool_.description == "Convert meters to another unit."
    assert tool_.inputs == {
        "meters": {"type": "number", "description": "Length in meters."},
        "unit": {"type": "string", "description": "Target unit.", "default": "ft"},
    }
    assert tool_.output_type == "number"
    assert round(tool_(2.0), 3) == 6.562

    class Undocumented(Tool):
        name = "undocumented"
        description = "Has a description but no argument docs."

        def forward(self, x: int) -> int:
            return x

    with pytest.raises(
        ToolDefinitionError, match="Argument 'x' of tool function '.*forward' is not described"
    ):
        Undocumented()

    class DocOnClass(Tool):
        """Double a number.

        Args:
            x: The number.
        """

        def forward(self, x: int) -> int:
            return 2 * x

    doubled = DocOnClass()
    assert doubled.description == "Double a number." and doubled(4) == 8


def test_subclass_init_without_super_is_still_checked() -> None:
    class Configured(Tool):
        name = "configured"
        description = "Add a configured offset."

        def __init__(self, offset: int) -> None:
            self.offset = offset
            self.inputs = {"x": {"type": "integer", "description": "Value."}}

        def forward(self, x: int) -> int:
            return x + self.offset

    configured = Configured(10)
    assert configured(5) == 15
    assert configured.parameters_schema["required"] == ["x"]


def test_setup_runs_once_before_first_call() -> None:
    calls: list[str] = []

    class Heavy(Tool):
        name = "heavy"
        description = "Needs a model loaded."
        inputs = {"x": {"type": "integer", "description": "Value."}}
        output_type = "integer"

        def setup(self) -> None:
            calls.append("setup")

        def forward(self, x: int) -> int:
            calls.append("forward")
            return x

    heavy = Heavy()
    assert calls == []
    threads = [threading.Thread(target=heavy, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls.count("setup") == 1 and calls[0] == "setup"
    assert asyncio.run(heavy.acall(3)) == 3
    assert calls.count("setup") == 1


@tool
async def slow_add(a: int, b: int) -> int:
    """Add two numbers, asynchronously.

    Args:
        a: First.
        b: Second.
    """
    await asyncio.sleep(0.01)
    return a + b


def test_async_tool_sync_and_async_calls() -> None:
    assert slow_add.is_async
    assert slow_add(2, 3) == 5  # no loop running in this thread

    async def inside_a_loop() -> tuple[int, int]:
        # a sync call from code running inside an event loop must not deadlock or raise
        return slow_add(a=1, b=1), await slow_add.acall(a=4, b=5)

    assert asyncio.run(inside_a_loop()) == (2, 9)


def test_sync_tool_acall_runs_in_worker_thread() -> None:
    main = threading.get_ident()

    @tool
    def which_thread() -> int:
        """Report the thread it runs on."""
        return threading.get_ident()

    assert which_thread() == main
    assert asyncio.run(which_thread.acall()) != main
    assert which_thread.inputs == {} and which_thread.parameters_schema["properties"] == {}
    assert which_thread.to_code_prompt().startswith("def which_thread() -> int:")


def test_async_tools_run_concurrently() -> None:
    @tool
    async def nap(seconds: float) -> float:
        """Sleep.

        Args:
            seconds: How long.
        """
        await asyncio.sleep(seconds)
        return seconds

    async def gather() -> list[float]:
        return list(await asyncio.gather(*(nap.acall(seconds=0.2) for _ in range(5))))

    loop = asyncio.new_event_loop()
    try:
        start = loop.time()
        assert loop.run_until_complete(gather()) == [0.2] * 5
        assert loop.time() - start < 0.9  # five naps overlapped instead of taking 1 s in a row
    finally:
        loop.close()


def test_tool_errors_propagate_unchanged() -> None:
    @tool
    def boom(x: int) -> int:
        """Fail.

        Args:
            x: Anything.
        """
        raise KeyError(x)

    with pytest.raises(KeyError):
        boom(1)
    with pytest.raises(KeyError):
        asyncio.run(boom.acall(1))


def test_final_answer_tool() -> None:
    final = FinalAnswerTool()
    assert final.name == "final_answer"
    assert list(final.inputs) == ["answer"]
    assert final.parameters_schema["properties"]["answer"] == {"description": "The final answer to the task."}
    obj = object()
    assert final(obj) is obj
    assert final.validate_arguments({"answer": [1, {"a": 2}]}) == {"answer": [1, {"a": 2}]}
    with pytest.raises(AgentToolCallError, match="missing required argument"):
        final.validate_arguments({})
    assert final.to_code_prompt().startswith("def final_answer(answer: Any) -> Any:")
