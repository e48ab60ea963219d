"""numpy and pandas values in the sandbox's safe value format (issue 8 §2.2): each value either round-trips
exactly or arrives as an `OpaqueValue` with its faithful repr, and no value breaks the worker.

The format is property-tested with hypothesis across dtypes, names, indexes, NaN/inf and nested containers; the
worker-level tests run a real sandbox worker (the "subprocess" isolation mode: the same worker, always available
on Linux, so these tests never skip for want of bubblewrap).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from codeloop.errors import ExecutionError
from codeloop.executors import OpaqueValue, SandboxExecutor
from codeloop.executors.worker import protocol as wire

# --- comparing values exactly -----------------------------------------------------------------------------------


def assert_same(original: Any, back: Any) -> None:
    """`back` is `original`, rebuilt: same type, dtype, names, index and values (NaN equal to NaN)."""
    if not isinstance(original, np.generic):
        assert type(back) is type(original), (type(original), type(back))
    if isinstance(original, pd.DataFrame):
        pd.testing.assert_frame_equal(
            back, original, check_exact=True, check_index_type=True, check_column_type=True
        )
        for left, right in ((back.index, original.index), (back.columns, original.columns)):
            assert type(left) is type(right)
            assert_same(list(right.names), list(left.names))
    elif isinstance(original, pd.Series):
        pd.testing.assert_series_equal(back, original, check_exact=True, check_index_type=True)
        assert type(back.index) is type(original.index)
        assert_same(list(original.index.names), list(back.index.names))
    elif isinstance(original, pd.Index):
        pd.testing.assert_index_equal(back, original, exact=True, check_exact=True)
        assert getattr(back, "freq", None) == getattr(original, "freq", None)
    elif isinstance(original, np.ndarray):
        assert back.dtype == original.dtype and back.shape == original.shape
        assert back.tobytes() == original.tobytes()
    elif isinstance(original, (list, tuple)):
        assert len(back) == len(original)
        for left, right in zip(original, back, strict=True):
            assert_same(left, right)
    elif isinstance(original, dict):
        assert list(back) == list(original)
        for key in original:
            assert_same(original[key], back[key])
    elif isinstance(original, np.generic):  # by design numpy scalars arrive as the equal Python scalar
        assert_same(original.item(), back)
    elif isinstance(original, float) and math.isnan(original):
        assert math.isnan(back)
    else:
        assert back is original or back == original


def through_the_wire(encoded: Any) -> Any:
    """Encoded data as the other side sees it: one JSON line, parsed and decoded."""
    line = wire.dump_message({"op": "done", "value": encoded})
    return wire.decode_value(wire.load_message(line)["value"])


# --- strategies -------------------------------------------------------------------------------------------------

NUMPY_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128", "datetime64[ns]", "datetime64[s]", "timedelta64[ns]",
]  # fmt: skip
names = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.tuples(st.text(max_size=3), st.integers()),
)
sizes = st.integers(min_value=0, max_value=6)


@st.composite
def numpy_columns(draw: st.DrawFn, size: int, for_index: bool = False) -> Any:
    dtypes = [d for d in NUMPY_DTYPES if d != "float16"] if for_index else NUMPY_DTYPES  # no float16 Index
    return draw(hnp.arrays(np.dtype(draw(st.sampled_from(dtypes))), size))


@st.composite
def extension_columns(draw: st.DrawFn, size: int, for_index: bool = False) -> Any:
    kind = draw(st.sampled_from(["Int64", "boolean", "Float64", "string", "str", "category", "object", "tz"]))
    if kind == "Int64":
        items = draw(
            st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=size, max_size=size)
        )
        return pd.array(items, dtype="Int64")
    if kind == "boolean":
        return pd.array(
            draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=size, max_size=size)), dtype="boolean"
        )
    if kind == "Float64":
        items = draw(st.lists(st.one_of(st.none(), st.floats(allow_nan=False)), min_size=size, max_size=size))
        return pd.array(items, dtype="Float64")
    if kind in ("string", "str"):
        items = draw(st.lists(st.one_of(st.none(), st.text(max_size=5)), min_size=size, max_size=size))
        return pd.array(items, dtype=kind)
    if kind == "category":
        categories = draw(st.lists(st.text(max_size=3), min_size=1, max_size=4, unique=True))
        codes = draw(st.lists(st.integers(-1, len(categories) - 1), min_size=size, max_size=size))
        ordered = draw(st.booleans())
        return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories, ordered=ordered))
    if kind == "tz":
        nanoseconds = st.integers(-(2**62), 2**62).map(lambda n: np.datetime64(n, "ns"))
        stamps = draw(hnp.arrays(np.dtype("datetime64[ns]"), size, elements=nanoseconds))
        zone = draw(st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]))
        return pd.array(stamps).tz_localize("UTC").tz_convert(zone)
    plain = st.one_of(
        st.none(), st.integers(), st.floats(), st.text(max_size=4), st.booleans(), st.binary(max_size=3)
    )
    array = np.empty(size, dtype=object)
    items = plain if for_index else st.one_of(plain, st.lists(plain, max_size=2))  # index labels are hashable
    array[:] = draw(st.lists(items, min_size=size, max_size=size))
    return array


def columns(size: int, for_index: bool = False) -> st.SearchStrategy[Any]:
    return st.one_of(numpy_columns(size, for_index), extension_columns(size, for_index))


@st.composite
def pandas_indexes(draw: st.DrawFn, size: int) -> Any:
    kind = draw(st.sampled_from(["range", "values", "multi", "dates"]))
    name = draw(names)
    if kind == "range":
        start, step = draw(st.integers(-10, 10)), draw(st.sampled_from([1, 2, -3]))
        return pd.RangeIndex(start, start + step * size, step, name=name)
    if kind == "multi":
        levels = [draw(columns(size, for_index=True)) for _ in range(draw(st.integers(2, 3)))]
        return pd.MultiIndex.from_arrays(levels, names=[draw(names) for _ in levels])
    if kind == "dates":
        return pd.date_range(
            "2024-01-01", periods=size, freq=draw(st.sampled_from(["D", "h", "min", None])), name=name
        )
    values = draw(columns(size, for_index=True))
    return pd.Index(values, dtype=values.dtype, name=name)


@st.composite
def pandas_series(draw: st.DrawFn) -> Any:
    size = draw(sizes)
    values = draw(columns(size))
    return pd.Series(values, index=draw(pandas_indexes(size)), name=draw(names), dtype=values.dtype)


@st.composite
def pandas_frames(draw: st.DrawFn) -> Any:
    size = draw(sizes)
    data = {i: draw(columns(size)) for i in range(draw(st.integers(0, 4)))}
    frame = pd.DataFrame({i: pd.Series(v, dtype=v.dtype) for i, v in data.items()}, index=pd.RangeIndex(size))
    frame.index = draw(pandas_indexes(size))
    labels = draw(st.sampled_from(["text", "ints", "multi"]))
    if labels == "text":
        frame.columns = pd.Index([f"c{i}" for i in range(frame.shape[1])], name=draw(names))
    elif labels == "multi":
        frame.columns = pd.MultiIndex.from_arrays(
            [list("ab" * 3)[: frame.shape[1]], list(range(frame.shape[1]))]
        )
    return frame


pandas_values = st.one_of(
    pandas_series(), pandas_frames(), pandas_indexes(3), st.builds(lambda a: a, numpy_columns(4))
)
nested = st.recursive(
    pandas_values | st.sampled_from([pd.NA, pd.NaT, np.float64("nan"), np.int16(7), float("inf")]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=4,
)


# --- the format -------------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(nested)
def test_numpy_and_pandas_values_round_trip_exactly(value: Any) -> None:
    assert_same(value, through_the_wire(wire.encode_value(value)))


@dataclasses.dataclass(frozen=True)
class _Unknown:
    label: str


unsupported = st.one_of(
    st.builds(lambda n: pd.Series(pd.period_range("2024-01", periods=n, freq="M")), sizes),
    st.builds(lambda n: pd.Series(pd.interval_range(0, n + 1)), sizes),
    st.builds(lambda n: pd.DataFrame({"thing": [_Unknown(str(i)) for i in range(n)]}), sizes),
)


@settings(max_examples=60, deadline=None)
@given(st.one_of(nested, unsupported))
def test_every_value_arrives_exactly_or_as_an_opaque_value_with_its_repr(value: Any) -> None:
    back = through_the_wire(wire.encode_or_describe(value))
    if isinstance(back, OpaqueValue):
        assert back.text == repr(value) and back.type_name == wire.type_name(value)
    else:
        assert_same(value, back)


def test_values_that_cannot_travel_exactly_are_refused_by_the_strict_encoder() -> None:
    with pytest.raises(wire.WireError, match="pandas.Period at \\[0\\] cannot leave the sandbox"):
        wire.encode_value(pd.Series(pd.period_range("2024-01", periods=2, freq="M")))
    back = through_the_wire(
        wire.encode_or_describe(pd.Series(pd.period_range("2024-01", periods=2, freq="M")))
    )
    assert isinstance(back, OpaqueValue) and "2024-02" in back.text


def test_a_host_to_sandbox_value_outside_the_format_is_pickled_instead() -> None:
    for value in (
        pd.Series(pd.period_range("2024-01", periods=2, freq="M")),
        pd.Series(pd.interval_range(0, 2)),
    ):
        encoded = wire.encode_value(value, allow_pickle=True)
        assert "pickle" in wire.dump_message({"op": "vars", "v": encoded}).decode()
        assert_same(value, wire.decode_value(encoded, allow_pickle=True))


@pytest.mark.parametrize(
    "forged",
    [
        {"$t": "series", "name": None, "index": {"range": [0, 2, 1], "name": None}, "v": {"np": [1, 2]}},
        {
            "$t": "dataframe",
            "index": {"range": [0, 1, 1], "name": None},
            "columns": {"range": [0, 2, 1], "name": None},
            "v": [],
        },
        {"$t": "series", "name": None, "index": {"range": [0, 1, 1], "name": None}, "v": {"dtype": "Int64"}},
        {
            "$t": "index",
            "v": {"v": {"categories": {"range": [0, 1, 1], "name": None}, "codes": [0]}, "name": None},
        },
        {"$t": "index", "v": "not an index"},
    ],
)
def test_malformed_pandas_markers_are_wire_errors(forged: dict[str, Any]) -> None:
    with pytest.raises(wire.WireError):
        wire.decode_value(forged)


# --- in a real worker -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxExecutor]:
    with SandboxExecutor(isolation="subprocess", timeout=20) as executor:
        executor.run("import numpy as np, pandas as pd")
        yield executor


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("pd.Series([True, False, True])", pd.Series([True, False, True])),
        ("pd.Series([1.5, float('nan'), float('-inf')])", pd.Series([1.5, float("nan"), float("-inf")])),
        ("pd.DataFrame({'x': [1, 2]}).sum()", pd.Series([3], index=pd.Index(["x"]))),
        (
            "pd.DataFrame({'x': [1.5], 'y': ['a']}, index=pd.Index(['r'], name='row'))",
            pd.DataFrame({"x": [1.5], "y": ["a"]}, index=pd.Index(["r"], name="row")),
        ),
        ("pd.Series([1, None], dtype='Int64', name='n')", pd.Series([1, None], dtype="Int64", name="n")),
        ("np.arange(6, dtype=np.int16).reshape(2, 3)", np.arange(6, dtype=np.int16).reshape(2, 3)),
    ],  # fmt: skip
)
def test_pandas_results_come_back_exactly_and_the_worker_keeps_its_state(
    sandbox: SandboxExecutor, expression: str, expected: Any
) -> None:
    restarts = sandbox.restarts
    sandbox.run("kept = 'still here'")
    assert_same(expected, sandbox.run(expression).output)
    assert sandbox.run("kept").output == "still here" and sandbox.restarts == restarts


def test_a_value_that_cannot_travel_arrives_opaque_with_its_repr(sandbox: SandboxExecutor) -> None:
    result = sandbox.run("s = pd.Series(pd.period_range('2024-01', periods=2, freq='M'))\ns")
    assert isinstance(result.output, OpaqueValue) and result.output.text == sandbox.run("repr(s)").output
    values = sandbox.get_variables(["s", "kept"])
    assert isinstance(values["s"], OpaqueValue) and "2024-02" in repr(values["s"])


def test_a_value_whose_encoding_fails_unexpectedly_never_breaks_the_worker(sandbox: SandboxExecutor) -> None:
    code = (
        "class Odd(pd.Series):\n"
        "    @property\n"
        "    def array(self):\n"
        "        raise RuntimeError('odd array')\n"
        "Odd([1, 2])"
    )
    restarts = sandbox.restarts
    assert isinstance(sandbox.run(code).output, OpaqueValue)
    assert sandbox.run("kept").output == "still here" and sandbox.restarts == restarts


@dataclasses.dataclass
class _HostOnly:
    value: int


@pytest.mark.parametrize("started", [False, True], ids=["before_start", "after_start"])
def test_send_variables_delivers_pandas_values_and_refuses_what_cannot_be_rebuilt(started: bool) -> None:
    series = pd.Series([0.5, float("nan")], index=pd.Index(["a", "b"], name="k"), name=("s", 1))
    with SandboxExecutor(isolation="subprocess", timeout=20) as executor:
        if started:
            executor.run("1")
        executor.send_variables({"a": series, "frame": series.to_frame()})
        assert_same(series, executor.run("a").output)
        assert_same(series.to_frame(), executor.run("frame").output)
        with pytest.raises(TypeError, match="could not be rebuilt inside the worker.*'host_only'"):
            executor.send_variables({"host_only": _HostOnly(1), "fine": 2})
        assert executor.run("(fine, 'host_only' in globals())").output == (2, False)


def test_a_result_the_host_cannot_decode_keeps_the_worker(sandbox: SandboxExecutor) -> None:
    forge = (
        "import codeloop_sandbox_protocol as w\n"
        "original = w.encode_or_describe\n"
        "w.encode_or_describe = lambda value: {'$t': 'no such kind'}\n"
        "1"
    )
    with pytest.raises(ExecutionError, match="could not be read on the host.*unknown value marker"):
        sandbox.run(forge)
    sandbox.run("w.encode_or_describe = original")
    assert sandbox.run("kept").output == "still here"
