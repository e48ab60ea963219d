"""The @tool decorator: schemas from type hints + docstrings, definition errors, validation, code stubs."""

from __future__ import annotations

import dataclasses
import enum
import typing
from typing import Any, Literal, Optional

import pytest
from pydantic import BaseModel

from codeloop.errors import AgentToolCallError, ToolDefinitionError
from codeloop.tools import FunctionTool, Tool, tool


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


class Box(BaseModel):
    width: float
    height: float


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


def test_simple_types_and_defaults() -> None:
    @tool
    def get_weather(city: str, days: int = 3, metric: bool = True, ratio: float = 0.5) -> str:
        """Forecast for a city.

        Args:
            city: City name, e.g. "Paris".
            days: How many days ahead.
            metric: Celsius when true.
            ratio: A number.
        """
        return f"{city}:{days}:{metric}:{ratio}"

    assert isinstance(get_weather, Tool)
    assert isinstance(get_weather, FunctionTool)
    assert get_weather.name == "get_weather"
    assert get_weather.description == "Forecast for a city."
    assert get_weather.inputs == {
        "city": {"type": "string", "description": 'City name, e.g. "Paris".'},
        "days": {"type": "integer", "description": "How many days ahead.", "default": 3},
        "metric": {"type": "boolean", "description": "Celsius when true.", "default": True},
        "ratio": {"type": "number", "description": "A number.", "default": 0.5},
    }
    assert get_weather.output_type == "string"
    assert get_weather.output_schema == {"type": "string"}
    assert get_weather.parameters_schema == {
        "type": "object",
        "properties": get_weather.inputs,
        "required": ["city"],
        "additionalProperties": False,
    }
    assert get_weather.to_function_spec() == {
        "name": "get_weather",
        "description": "Forecast for a city.",
        "parameters": get_weather.parameters_schema,
    }
    # still callable like the function, positional or keyword, result unchanged
    assert get_weather("Paris") == "Paris:3:True:0.5"
    assert get_weather("Oslo", days=1, metric=False) == "Oslo:1:False:0.5"
    assert get_weather.__name__ == "get_weather"
    assert "Forecast" in (get_weather.__doc__ or "")


def test_containers_optionals_literals() -> None:
    @tool
    def f(
        tags: list[str],
        weights: dict[str, float],
        note: Optional[str] = None,  # noqa: UP045 - the typing spelling must work too
        mode: Literal["fast", "slow"] = "fast",
        either: int | str = 1,
        anything: Any = None,
    ) -> dict[str, int]:
        """Do f.

        Args:
            tags: Tags.
            weights: Weights per tag.
            note: Optional note.
            mode: Speed.
            either: Number or text.
            anything: Any value.
        """
        return {}

    inputs = f.inputs
    assert inputs["tags"] == {"type": "array", "description": "Tags.", "items": {"type": "string"}}
    assert inputs["weights"] == {
        "type": "object",
        "description": "Weights per tag.",
        "additionalProperties": {"type": "number"},
    }
    assert inputs["note"] == {
        "type": "string",
        "description": "Optional note.",
        "nullable": True,
        "default": None,
    }
    assert inputs["mode"] == {
        "type": "string",
        "description": "Speed.",
        "enum": ["fast", "slow"],
        "default": "fast",
    }
    assert inputs["either"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert inputs["anything"] == {"type": "any", "description": "Any value.", "default": None}
    props = f.parameters_schema["properties"]
    assert props["note"]["type"] == ["string", "null"]
    assert "nullable" not in props["note"]
    assert props["anything"] == {"description": "Any value.", "default": None}
    assert f.parameters_schema["required"] == ["tags", "weights"]
    assert f.output_type == "object"
    assert f.output_schema == {"type": "object", "additionalProperties": {"type": "integer"}}


def test_enum_dataclass_pydantic_arguments_become_instances() -> None:
    seen: dict[str, Any] = {}

    @tool
    def place(color: Color, at: Point, box: Box | None = None, tree: Tree | None = None) -> None:
        """Place a box.

        Args:
            color: Its color.
            at: Where.
            box: Its size.
            tree: A recursive structure.
        """
        seen.update(color=color, at=at, box=box, tree=tree)

    schema = place.parameters_schema
    assert schema["properties"]["color"]["enum"] == ["red", "blue"]
    assert schema["properties"]["at"]["properties"] == {
        "x": {"type": "integer"},
        "y": {"type": "integer", "default": 0},
    }
    assert schema["properties"]["box"]["required"] == ["width", "height"]
    # recursive models keep one definition at the root so the reference resolves
    assert schema["$defs"]["Tree"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Tree"}
    assert schema["properties"]["tree"]["properties"]["label"] == {"type": "string"}

    args = place.validate_arguments(
        {"color": "blue", "at": {"x": "2"}, "box": {"width": 1, "height": 2.5}, "tree": {"label": "a"}}
    )
    assert args["color"] is Color.BLUE
    assert args["at"] == Point(x=2, y=0)
    assert isinstance(args["box"], Box) and args["box"].height == 2.5
    assert isinstance(args["tree"], Tree)
    place(**args)
    assert seen["at"] == Point(2, 0)

    # a code action passing plain dicts gets instances too
    place(color="red", at={"x": 5, "y": 6}, box={"width": 1, "height": 1})
    assert seen["color"] is Color.RED
    assert seen["at"] == Point(5, 6)
    assert isinstance(seen["box"], Box)
    # instances pass through untouched
    box = Box(width=3, height=4)
    place(Color.BLUE, Point(1, 1), box)
    assert seen["box"] is box


def test_validate_arguments_reports_every_problem() -> None:
    @tool
    def book(city: str, nights: int, guests: list[str] | None = None) -> str:
        """Book a hotel.

        Args:
            city: Where.
            nights: How many nights.
            guests: Guest names.
        """
        return city

    with pytest.raises(AgentToolCallError) as info:
        book.validate_arguments({"nights": "many", "guests": ["a", 3], "pets": 2})
    message = str(info.value)
    assert "tool 'book'" in message
    assert "'city': missing required argument (expected string)" in message
    assert "'nights'" in message and "integer" in message and "'many'" in message
    assert "'guests[1]'" in message
    assert "'pets': unexpected argument" in message and "'city', 'nights', 'guests'" in message

    with pytest.raises(AgentToolCallError, match="JSON object"):
        book.validate_arguments('{"city": "x"}')  # type: ignore[arg-type]

    # coercion of JSON-ish values; omitted optional arguments stay omitted
    assert book.validate_arguments({"city": "Rome", "nights": "2"}) == {"city": "Rome", "nights": 2}


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("def f(a: int) -> int:\n    return a\n", "'f' has no docstring"),
        (
            'def f(a: int) -> int:\n    """Do it."""\n    return a\n',
            "Argument 'a' of tool function 'f' is not described",
        ),
        (
            'def f(a, b: int) -> int:\n    """Do it.\n\n    Args:\n        a: x\n        b: y\n    """\n',
            "Argument 'a' of tool function 'f' has no type hint",
        ),
        (
            'def f(a: int) -> int:\n    """Do it.\n\n    Args:\n        a: x\n        zz: y\n    """\n',
            "describes 'zz', which is not an argument",
        ),
        (
            'def f(*items: int) -> int:\n    """Do it.\n\n    Args:\n        items: x\n    """\n',
            "takes *items",
        ),
        (
            'def f(a: int, /) -> int:\n    """Do it.\n\n    Args:\n        a: x\n    """\n',
            "positional-only",
        ),
        (
            'def f(a: int) -> int:\n    """\n    Args:\n        a: x\n    """\n',
            "has no description",
        ),
        (
            'def f(a: "Missing") -> int:\n    """Do it.\n\n    Args:\n        a: x\n    """\n',
            "type hints cannot be resolved",
        ),
    ],
)
def test_definition_errors_name_function_and_argument(source: str, fragment: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(ToolDefinitionError) as info:
        tool(namespace["f"])
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_names_are_refused() -> None:
    def body(x: int) -> int:
        """Body.

        Args:
            x: A number.
        """
        return x

    with pytest.raises(ToolDefinitionError, match="not a valid Python identifier"):
        tool(name="my-tool")(body)
    with pytest.raises(ToolDefinitionError, match="not a valid Python identifier"):
        tool(name="class")(body)
    with pytest.raises(ToolDefinitionError, match="non-empty string"):
        tool(lambda x: x, name="")
    renamed = tool(name="double", description="Double a number.")(body)
    assert renamed.name == "double" and renamed.description == "Double a number."
    assert renamed(4) == 4


def test_code_prompt_is_a_python_stub() -> None:
    @tool
    def search(query: str, limit: int = 5, site: str | None = None, color: Color = Color.RED) -> list[dict]:
        """Search the web.

        Results come back ranked.

        Args:
            query: What to look for.
                Plain words work best.
            limit: Maximum results.
            site: Restrict to one site.
            color: Highlight color.

        Returns:
            The hits, best first.
        """
        return []

    stub = search.to_code_prompt()
    assert stub.splitlines()[0] == (
        "def search(query: str, limit: int = 5, site: str | None = None, color: Color = Color.RED) -> list[dict]:"
    )
    assert stub == (
        "def search(query: str, limit: int = 5, site: str | None = None, color: Color = Color.RED) -> list[dict]:\n"
        '    """Search the web.\n'
        "\n"
        "    Results come back ranked.\n"
        "\n"
        "    Args:\n"
        "        query: What to look for.\n"
        "            Plain words work best.\n"
        "        limit: Maximum results.\n"
        "        site: Restrict to one site.\n"
        "        color: Highlight color. (one of 'red', 'blue')\n"
        "\n"
        "    Returns:\n"
        "        list[dict]: The hits, best first.\n"
        '    """'
    )
    compile(stub, "<stub>", "exec")  # the stub is valid Python


def test_code_prompt_shows_structured_output() -> None:
    @tool
    def measure(box: Box) -> Point:
        """Measure a box.

        Args:
            box: The box.
        """
        return Point(1, 2)

    stub = measure.to_code_prompt()
    assert "def measure(box: Box) -> Point:" in stub
    assert "box: The box. (object {width: number, height: number})" in stub
    assert "Point: object {x: integer, y?: integer}" in stub
    assert measure.output_type == "object"
    assert measure.output_schema is not None and measure.output_schema["properties"]["x"] == {
        "type": "integer"
    }
    # the object comes back as the object
    assert measure(Box(width=1, height=1)) == Point(1, 2)


def test_untyped_return_and_arbitrary_classes() -> None:
    class Frame:
        """Not something JSON Schema can describe."""

    @tool
    def load(path: str):  # type: ignore[no-untyped-def]
        """Load a frame.

        Args:
            path: File path.
        """
        return Frame()

    assert load.output_type == "any" and load.output_schema is None
    assert "-> Any:" in load.to_code_prompt()
    assert isinstance(load("x"), Frame)

    def summarize(frame: Frame) -> Frame:
        """Summarize.

        Args:
            frame: The data.
        """
        return frame

    summarize.__annotations__ = {"frame": Frame, "return": Frame}
    summary = tool(summarize)
    assert summary.inputs["frame"]["type"] == "any"
    assert summary.output_type == "object"
    frame = Frame()
    assert summary(frame) is frame
    assert summary.validate_arguments({"frame": frame})["frame"] is frame
    with pytest.raises(AgentToolCallError, match="instance of .*Frame"):
        summary.validate_arguments({"frame": {"a": 1}})


def test_docstring_styles_and_typed_args_section() -> None:
    @tool
    def numpy_style(a: int, b: str) -> str:
        """Join things.

        Parameters
        ----------
        a : int
            A number.
        b : str
            A word.
        """
        return f"{a}{b}"

    assert numpy_style.inputs["a"]["description"] == "A number."
    assert numpy_style.inputs["b"]["description"] == "A word."

    @tool
    def google_typed(a: int) -> int:
        """Twice.

        Args:
            a (int): The number.
        """
        return 2 * a

    assert google_typed.inputs["a"] == {"type": "integer", "description": "The number."}


def test_string_annotations_resolve() -> None:
    # this module uses `from __future__ import annotations`, so every hint here is a string
    @tool
    def f(points: list[Point], limit: typing.Optional[int] = None) -> dict[str, Point]:  # noqa: UP045
        """Index points.

        Args:
            points: The points.
            limit: At most this many.
        """
        return {str(i): p for i, p in enumerate(points[:limit])}

    args = f.validate_arguments({"points": [{"x": 1}, {"x": 2, "y": 3}]})
    assert args["points"] == [Point(1), Point(2, 3)]
    assert f(**args) == {"0": Point(1), "1": Point(2, 3)}


def test_handwritten_json_schema_inputs_validate_like_the_schema_says() -> None:
    class Order(Tool):
        name = "place_order"
        description = "Place an order."
        inputs = {
            "items": {
                "type": "array",
                "description": "What to buy.",
                "items": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                    "required": ["sku"],
                    "additionalProperties": False,
                },
            },
            "priority": {"description": "How fast.", "enum": ["low", "high"], "default": "low"},
            "note": {"type": ["string", "null"], "description": "Free text."},
            "coupon": {"anyOf": [{"type": "string"}, {"type": "integer"}], "description": "Code or number."},
            "meta": {
                "type": "object",
                "description": "Anything else.",
                "additionalProperties": {"type": "number"},
            },
        }
        output_type = "object"

        def forward(
            self, items: list, note: str | None, coupon: Any, meta: dict, priority: str = "low"
        ) -> dict:
            return {"n": len(items)}

    order = Order()
    assert order.required_inputs == ["items", "note", "coupon", "meta"]
    ok = order.validate_arguments(
        {"items": [{"sku": "A", "qty": "2"}], "note": None, "coupon": 7, "meta": {"w": 1}, "priority": "high"}
    )
    assert ok["items"] == [{"sku": "A", "qty": 2}] and ok["coupon"] == 7 and ok["meta"] == {"w": 1.0}
    with pytest.raises(AgentToolCallError) as info:
        order.validate_arguments(
            {
                "items": [{"qty": 1, "color": "red"}],
                "note": 3,
                "coupon": [1],
                "meta": {"w": "x"},
                "priority": "asap",
            }
        )
    message = str(info.value)
    for fragment in ("'items[0].sku'", "'items[0].color'", "'note'", "'coupon'", "'meta.w'", "'priority'"):
        assert fragment in message, fragment
    stub = order.to_code_prompt()
    # an optional argument listed before required ones: keyword-only keeps the stub valid and honest
    assert stub.startswith(
        "def place_order(*, items: list[dict], priority: Literal['low', 'high'] = 'low', note: str | None, "
        "coupon: str | int, meta: dict[str, float]) -> dict:"
    )
    compile(stub, "<stub>", "exec")
    assert order.parameters_schema["properties"]["note"]["type"] == ["string", "null"]


def test_schema_helpers() -> None:
    from codeloop.tools.schema import clean_schema, describe_schema, json_type_name, render_annotation

    schema = {
        "$defs": {
            "Node": {"title": "Node", "type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}
        },
        "type": "object",
        "properties": {"title": {"title": "Title", "type": "string"}, "head": {"$ref": "#/$defs/Node"}},
    }
    cleaned = clean_schema(schema)
    assert cleaned["properties"]["title"] == {"type": "string"}  # a property named "title" survives
    assert cleaned["properties"]["head"]["properties"]["next"] == {"$ref": "#/$defs/Node"}
    assert cleaned["$defs"]["Node"]["properties"]["next"] == {"$ref": "#/$defs/Node"}
    assert json_type_name({"anyOf": [{"type": "integer"}, {"type": "null"}]}) == "integer"
    assert json_type_name({"enum": ["a", "b"]}) == "string"
    assert describe_schema({"type": "array", "items": {"type": "integer"}, "nullable": True}) == (
        "array of integer or null"
    )
    assert render_annotation(dict[str, list[int | None]]) == "dict[str, list[int | None]]"
    assert render_annotation(Optional[Color]) == "Color | None"  # noqa: UP045
