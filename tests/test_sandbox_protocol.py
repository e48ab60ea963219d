"""The worker protocol's safe value format and message framing (no worker process needed)."""

from __future__ import annotations

import datetime as dt
import math
import os
import pickle
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction
from uuid import UUID

import pytest

from codeloop.executors.worker import protocol as wire
from codeloop.executors.worker.bundle import BOOTSTRAP, worker_bundle
from codeloop.executors.worker.seccomp import build_filter


def roundtrip(value: object) -> object:
    line = wire.dump_message({"op": "x", "v": wire.encode_value(value)})
    return wire.decode_value(wire.load_message(line)["v"])


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(10**5000),  # beyond CPython's 4300-digit limit for decimal int parsing
        2.5,
        "naïve – ünïcödé",
        "lone \udc80 surrogate",
        [1, [2, [3]]],
        (1, "a", (2.0,)),
        {1, 2, 3},
        frozenset({"a"}),
        {"a": 1, "b": [1, 2]},
        {1: "int key", (1, 2): "tuple key", None: 0},
        {"$t": "a plain dict that uses the marker key"},
        b"\x00\xffbytes",
        bytearray(b"ba"),
        3 + 4j,
        dt.datetime(2024, 5, 1, 12, 30, 5, 123, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.date(2024, 5, 1),
        dt.time(23, 59, 1),
        dt.timedelta(days=-1, seconds=5, microseconds=7),
        Decimal("3.14159265358979323846264338327950288"),
        Fraction(-(10**5000), 7),
        UUID("12345678-1234-5678-1234-567812345678"),
        range(1, 10, 3),
    ],
    ids=lambda value: type(value).__name__,
)
def test_values_round_trip_exactly(value: object) -> None:
    back = roundtrip(value)
    assert back == value and type(back) is type(value)


def test_special_floats_round_trip() -> None:
    back = roundtrip([math.inf, -math.inf, math.nan])
    assert isinstance(back, list) and back[:2] == [math.inf, -math.inf] and math.isnan(back[2])


def test_subclasses_of_plain_types_travel_as_their_base_value() -> None:
    import enum

    class Color(enum.IntEnum):
        RED = 1

    assert roundtrip(Color.RED) == 1 and type(roundtrip(Color.RED)) is int


def test_a_value_the_safe_format_cannot_carry_is_named_in_the_error() -> None:
    class Report:
        pass

    with pytest.raises(wire.WireError, match=r"Report.* at \[1\]\['x'\] cannot leave the sandbox"):
        wire.encode_value([0, {"x": Report()}])


def test_reference_cycles_are_refused_not_looped_on() -> None:
    items: list[object] = []
    items.append(items)
    with pytest.raises(wire.WireError, match="reference cycle"):
        wire.encode_value(items)


def test_opaque_values_carry_type_and_repr() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<thing 7>"

    back = wire.decode_value(wire.encode_or_describe(Thing()))
    assert (
        isinstance(back, wire.OpaqueValue) and repr(back) == "<thing 7>" and back.type_name.endswith("Thing")
    )


def test_the_host_never_unpickles_what_a_worker_sends(tmp_path: object) -> None:
    marker = os.path.join(str(tmp_path), "unpickled")
    blob = pickle.dumps(_Touch(marker))
    data = {"$t": "pickle", "v": wire.encode_value(blob)["v"]}
    with pytest.raises(wire.WireError, match="refusing a pickle"):
        wire.decode_value(data)
    assert not os.path.exists(marker)
    assert isinstance(wire.decode_value(data, allow_pickle=True), type(None)) and os.path.exists(marker)


class _Touch:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (_touch, (self.path,))


def _touch(path: str) -> None:
    with open(path, "w") as handle:
        handle.write("x")


@pytest.mark.parametrize(
    "data",
    [
        {"$t": "no-such-kind"},
        {"$t": "tuple"},
        {"$t": "dict", "v": [[1]]},
        {"$t": "bytes", "v": 5},
        {"$t": "datetime", "v": "not a date"},
        {"$t": "complex", "v": ["a", 1]},
        {"$t": "ndarray", "dtype": "<f8", "shape": [3], "v": "AAAA"},
    ],
)
def test_malformed_markers_raise_wire_errors(data: dict[str, object]) -> None:
    with pytest.raises(wire.WireError):
        wire.decode_value(data)


@pytest.mark.parametrize("line", [b"not json\n", b"[1, 2]\n", b'{"no": "op"}\n', b"[" * 100000 + b"\n"])
def test_lines_that_are_not_messages_are_rejected(line: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.load_message(line)


def test_a_message_is_exactly_one_line() -> None:
    line = wire.dump_message({"op": "out", "text": "a\nb\r\n\u2028c"})
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert wire.load_message(line)["text"] == "a\nb\r\n\u2028c"


def test_optional_numpy_arrays_round_trip() -> None:
    numpy = pytest.importorskip("numpy", reason="numpy is not installed")
    array = numpy.arange(12, dtype=numpy.int32).reshape(3, 4)
    back = roundtrip(array)
    assert isinstance(back, numpy.ndarray) and back.dtype == array.dtype and (back == array).all()


def test_worker_modules_load_in_a_bare_interpreter_with_only_the_stdlib() -> None:
    # The bundle is what a sandbox receives; -I -S: no site-packages, no codeloop, no environment.
    probe = "module.main = lambda reader: print(sorted(m for m in sys.modules if m.startswith('codeloop')))"
    program = BOOTSTRAP.replace("    module.main(reader)", f"    {probe}\n    module.main(reader)")
    for kind in ("source", "marshal"):
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", program],
            input=worker_bundle(kind),
            capture_output=True,
            timeout=60,
            env={},
        )
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().strip() == str(
            [
                "codeloop_sandbox_limits",
                "codeloop_sandbox_output",
                "codeloop_sandbox_protocol",
                "codeloop_sandbox_workdir",
                "codeloop_sandbox_worker",
            ]
        )


def test_seccomp_filter_is_built_for_known_machines_only() -> None:
    for machine in ("x86_64", "aarch64"):
        program = build_filter(machine)
        assert program is not None and len(program) % 8 == 0 and len(program) // 8 < 200
    assert build_filter("sparc64") is None
