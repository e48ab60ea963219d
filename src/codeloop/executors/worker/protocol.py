"""The worker protocol: the messages between the host and a sandboxed Python worker, and the safe value format.

This module runs on both sides. Inside a sandbox it is loaded by a bare interpreter with only the standard
library, so it imports nothing but the stdlib (numpy, pandas and PIL are used only when the caller already has
them loaded) and nothing from the rest of codeloop.

Framing
    Every message is one line: a JSON object encoded as UTF-8 (lone surrogates pass through `surrogatepass`),
    ending with ``\\n``. JSON never contains a raw newline, so a line is a message, and the same stream works over
    a pipe, a Docker attach socket or a cloud sandbox's text stdio. Each message has an ``op``.

Values
    Data from the sandbox to the host (tool arguments, `final_answer` values, results, variables) travels in the
    *safe format*: JSON, with non-JSON values as typed markers ``{"$t": kind, ...}``. Decoding builds only the
    types listed in `SAFE_KINDS`; nothing in a marker names a class to import or a function to call, so a hostile
    sandbox cannot make the host run code by sending data. The host never unpickles what the sandbox sends.
    Data from the host to the sandbox may also be a pickle (marker ``pickle``), which only the worker accepts.
    numpy arrays and pandas DataFrames, Series and Indexes travel exactly (dtypes, names, indexes, NaN/inf);
    numpy scalars arrive as the equal Python scalar. `encode_or_describe` sends what the format cannot carry
    exactly as an `OpaqueValue` (type name and repr) rather than failing or arriving altered.

The host side is `codeloop.executors.worker.host`; the worker side is `codeloop.executors.worker.guest`.
"""

from __future__ import annotations

import binascii
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing alone costs the sandbox ~3 ms per start
if TYPE_CHECKING:
    from typing import Any

# The sandbox imports this module on every start, so it avoids modules that are slow to import (json compiles
# regular expressions, typing/uuid/fractions pull in more): value types are recognised through `sys.modules`
# (a value cannot be a Decimal unless `decimal` was imported) and decoders import what they need when needed.

__all__ = [
    "PROTOCOL_VERSION",
    "MARKER",
    "SAFE_KINDS",
    "WireError",
    "MessageTooLarge",
    "DEFAULT_MAX_MESSAGE_MB",
    "too_large",
    "OpaqueValue",
    "encode_value",
    "decode_value",
    "encode_or_describe",
    "dump_message",
    "load_message",
    "type_name",
]

PROTOCOL_VERSION = 3
"""Bumped whenever a message changes shape; host and worker refuse to talk across versions."""

MARKER = "$t"
"""The key that marks a JSON object as an encoded non-JSON value."""

SAFE_KINDS = (
    "tuple set frozenset dict bytes bytearray complex int datetime date time timedelta decimal fraction uuid "
    "range ndarray dataframe series index na nat image repr"
).split()
"""Every marker kind the decoder knows (plus ``pickle``, which only the sandbox side accepts)."""

_BIG_INT_DIGITS = 4000  # CPython refuses to parse decimal ints over 4300 digits; bigger ones travel as hex
_REPR_LIMIT = 20_000
_IMAGE_MODES = frozenset({"1", "L", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "F", "I;16"})
_NDARRAY_KINDS = frozenset("biufcmMSU")


class WireError(TypeError):
    """A value cannot travel in the safe format (or a received message is malformed); the message says why."""


DEFAULT_MAX_MESSAGE_MB = 64
"""Default size limit of one message between the host and the worker (a tool result, a value, the code), in MiB;
executors take `max_message_mb` to change it. It bounds the memory a message costs on both sides."""


class MessageTooLarge(ValueError):
    """A message between the host and the worker would be over the size limit; the message says what and how big."""


def too_large(what: str, size: int, limit: int) -> str:
    """The explanation for `what` being `size` bytes when one message may carry `limit` bytes."""
    return (
        f"{what} is {size / 2**20:.1f} MiB, over the {limit / 2**20:g} MiB limit for one message between the host "
        "and the sandbox. Work with less data at a time (filter, summarise or page through it, or keep big data "
        "in files); the limit is the executor's max_message_mb (e.g. executor_kwargs={'max_message_mb': 256})."
    )


class OpaqueValue:
    """Stands on the host for a sandbox object the safe format cannot carry: its type name and its `repr`.

    The repr was computed inside the sandbox, so showing this object runs no sandbox code on the host.
    """

    __slots__ = ("type_name", "text")

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name = type_name
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OpaqueValue) and (other.type_name, other.text) == (self.type_name, self.text)

    def __hash__(self) -> int:
        return hash((self.type_name, self.text))


def type_name(value: Any) -> str:
    """`module.QualName` of the value's type (just `QualName` for builtins), for error messages."""
    kind = type(value)
    module = getattr(kind, "__module__", "") or ""
    name = getattr(kind, "__qualname__", kind.__name__)
    return name if module == "builtins" else f"{module}.{name}"


# --- encoding ---------------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


class _Encoder:
    def __init__(self, allow_pickle: bool) -> None:
        self.allow_pickle = allow_pickle
        self.active: set[int] = set()

    def enter(self, value: Any, path: str) -> None:
        key = id(value)
        if key in self.active:
            raise WireError(f"the value at {path or 'top level'} contains a reference cycle")
        self.active.add(key)

    def encode(self, value: Any, path: str) -> Any:
        kind = type(value)
        if value is None or kind is bool or kind is str or kind is float:
            return value
        if kind is int:
            if value.bit_length() > _BIG_INT_DIGITS * 3:
                return {MARKER: "int", "v": format(value, "x")}
            return value
        if kind is list:
            self.enter(value, path)
            try:
                return [self.encode(item, f"{path}[{i}]") for i, item in enumerate(value)]
            finally:
                self.active.discard(id(value))
        if kind is dict:
            self.enter(value, path)
            try:
                return self.encode_dict(value, path)
            finally:
                self.active.discard(id(value))
        if kind in (tuple, set, frozenset):
            self.enter(value, path)
            try:
                items = value if kind is tuple else _stable_order(value)
                encoded = [self.encode(item, f"{path}[{i}]") for i, item in enumerate(items)]
                return {MARKER: kind.__name__, "v": encoded}
            finally:
                self.active.discard(id(value))
        return self.encode_other(value, path)

    def encode_dict(self, value: dict[Any, Any], path: str) -> Any:
        if all(type(key) is str for key in value) and MARKER not in value:
            return {key: self.encode(item, f"{path}[{key!r}]") for key, item in value.items()}
        pairs = [
            [self.encode(key, f"{path}<key {i}>"), self.encode(item, f"{path}[{key!r}]")]
            for i, (key, item) in enumerate(value.items())
        ]
        return {MARKER: "dict", "v": pairs}

    def encode_other(self, value: Any, path: str) -> Any:
        pandas = sys.modules.get("pandas")
        if pandas is not None and (value is pandas.NA or value is pandas.NaT):  # NaT passes for a datetime
            return {MARKER: "na" if value is pandas.NA else "nat"}
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, (bytes, bytearray)):
            return {MARKER: "bytearray" if isinstance(value, bytearray) else "bytes", "v": _b64(bytes(value))}
        if isinstance(value, complex):
            return {MARKER: "complex", "v": [value.real, value.imag]}
        datetime = sys.modules.get("datetime")
        if datetime is not None:
            if isinstance(value, datetime.datetime):
                return {MARKER: "datetime", "v": value.isoformat()}
            if isinstance(value, datetime.date):
                return {MARKER: "date", "v": value.isoformat()}
            if isinstance(value, datetime.time):
                return {MARKER: "time", "v": value.isoformat()}
            if isinstance(value, datetime.timedelta):
                return {MARKER: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
        decimal = sys.modules.get("decimal")
        if decimal is not None and isinstance(value, decimal.Decimal):
            return {MARKER: "decimal", "v": str(value)}
        fractions = sys.modules.get("fractions")
        if fractions is not None and isinstance(value, fractions.Fraction):
            return {MARKER: "fraction", "v": [format(value.numerator, "x"), format(value.denominator, "x")]}
        uuid = sys.modules.get("uuid")
        if uuid is not None and isinstance(value, uuid.UUID):
            return {MARKER: "uuid", "v": str(value)}
        if isinstance(value, range):
            return {MARKER: "range", "v": [value.start, value.stop, value.step]}
        if isinstance(
            value, (int, float, str)
        ):  # subclasses (IntEnum, str enums...) travel as their base value
            base = int if isinstance(value, int) else float if isinstance(value, float) else str
            return self.encode(base(value), path)
        try:
            encoded = _encode_optional(self, value, path)
        except WireError:
            if not self.allow_pickle:
                raise
            encoded = None  # host to sandbox: a pickle can still carry it
        if encoded is not None:
            return encoded
        if self.allow_pickle:
            import pickle

            try:
                return {MARKER: "pickle", "v": _b64(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))}
            except Exception as exc:
                raise WireError(
                    f"{type_name(value)} at {path or 'top level'} cannot be sent into the sandbox: it can be "
                    f"neither encoded nor pickled ({type(exc).__name__}: {exc})"
                ) from None
        where = f" at {path}" if path else ""
        raise WireError(
            f"a value of type {type_name(value)}{where} cannot leave the sandbox: only plain data travels "
            "(None, bool, int, float, str, bytes, list, tuple, dict, set, datetime/date/time/timedelta, "
            "Decimal, Fraction, UUID, complex, numpy arrays, pandas DataFrame/Series/Index, PIL images). "
            "Convert it first, e.g. to a dict or str()."
        )


def _stable_order(items: Any) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:
        return list(items)


def _encode_optional(encoder: _Encoder, value: Any, path: str) -> Any:
    """numpy / pandas / PIL values, when those libraries are already loaded (never imported just for this)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(value, numpy.ndarray):
            if value.dtype.kind not in _NDARRAY_KINDS or value.dtype.fields is not None:
                raise WireError(
                    f"a numpy array of dtype {value.dtype} at {path or 'top level'} cannot leave the sandbox; "
                    "only numeric, bool, datetime and fixed-width string arrays travel"
                )
            data = numpy.ascontiguousarray(value)
            return {
                MARKER: "ndarray",
                "dtype": data.dtype.str,
                "shape": list(data.shape),
                "v": _b64(data.tobytes()),
            }
        if isinstance(value, numpy.generic):
            return encoder.encode(value.item(), path)
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        encoded = _encode_pandas(encoder, pandas, value, path)
        if encoded is not None:
            return encoded
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(value, pil.Image):
        image = value if value.mode in _IMAGE_MODES else value.convert("RGBA")
        return {MARKER: "image", "mode": image.mode, "size": list(image.size), "v": _b64(image.tobytes())}
    return None


# pandas values travel as their parts: each column (and index level) as one array, with the names and dtypes
# that make the value what it is. Why not a ready-made serializer: pickle would let a hostile sandbox run code on
# the host; pandas' JSON (the table schema) is lossy (it turned an unnamed bool Series into all-True and float
# Series into NaN); Arrow IPC or Parquet would be exact but need pyarrow on the host and in every sandbox image,
# which the stdlib-only worker cannot assume. The arrays themselves use numpy's own dtype strings and raw buffers
# (exact by construction); object arrays go element by element through the safe format; an extension dtype is
# named by the string pandas itself parses back (only when that string gives the same dtype). Whatever does not
# fit raises WireError, so the value arrives as an opaque stand-in with its repr instead of arriving wrong.


def _encode_pandas(encoder: _Encoder, pandas: Any, value: Any, path: str) -> Any:
    if isinstance(value, pandas.DataFrame):
        columns = [
            _encode_array(encoder, pandas, value.iloc[:, i], f"{path}.iloc[:, {i}]")
            for i in range(value.shape[1])
        ]
        return {
            MARKER: "dataframe",
            "index": _encode_index(encoder, pandas, value.index, f"{path}.index"),
            "columns": _encode_index(encoder, pandas, value.columns, f"{path}.columns"),
            "v": columns,
        }
    if isinstance(value, pandas.Series):
        return {
            MARKER: "series",
            "name": encoder.encode(value.name, f"{path}.name"),
            "index": _encode_index(encoder, pandas, value.index, f"{path}.index"),
            "v": _encode_array(encoder, pandas, value, path),
        }
    if isinstance(value, pandas.Index):
        return {MARKER: "index", "v": _encode_index(encoder, pandas, value, path)}
    if value is pandas.NA:
        return {MARKER: "na"}
    if value is pandas.NaT:
        return {MARKER: "nat"}
    return None


def _encode_index(encoder: _Encoder, pandas: Any, index: Any, path: str) -> dict[str, Any]:
    if isinstance(
        index, pandas.MultiIndex
    ):  # as levels and codes (get_level_values(0) could mean a level's name)
        numpy = sys.modules["numpy"]
        return {
            "levels": [_encode_index(encoder, pandas, level, f"{path}.levels") for level in index.levels],
            "codes": [encoder.encode(numpy.asarray(codes), f"{path}.codes") for codes in index.codes],
            "names": [encoder.encode(name, f"{path}.names") for name in index.names],
        }
    name = encoder.encode(index.name, f"{path}.name")
    if isinstance(index, pandas.RangeIndex):
        return {"range": [index.start, index.stop, index.step], "name": name}
    encoded = {"v": _encode_array(encoder, pandas, index, path), "name": name}
    freq = getattr(index, "freqstr", None)
    if isinstance(freq, str):
        encoded["freq"] = freq
    return encoded


def _encode_array(encoder: _Encoder, pandas: Any, holder: Any, path: str) -> dict[str, Any]:
    """The values of a Series or Index (`holder`, whose dtype is numpy's own for numpy-backed data)."""
    numpy = sys.modules["numpy"]  # pandas imports it
    dtype = holder.dtype
    array = holder.array
    if isinstance(dtype, numpy.dtype):
        data = numpy.asarray(array)
        if dtype.kind == "O":
            return {"obj": [encoder.encode(item, f"{path}[{i}]") for i, item in enumerate(data)]}
        return {"np": encoder.encode(data, path)}
    if isinstance(dtype, pandas.CategoricalDtype):
        return {
            "categories": _encode_index(encoder, pandas, dtype.categories, f"{path}.categories"),
            "codes": encoder.encode(numpy.asarray(array.codes), path),
            "ordered": bool(dtype.ordered),
        }
    name = str(dtype)
    try:
        same = pandas.api.types.pandas_dtype(name) == dtype
    except Exception:  # pandas cannot parse its own name for this dtype
        same = False
    if not same:
        raise WireError(f"a pandas column of dtype {name} at {path or 'top level'} cannot leave the sandbox")
    if isinstance(dtype, pandas.DatetimeTZDtype):  # as UTC datetime64 values: exact to the nanosecond
        return {"dtype": name, "utc": encoder.encode(numpy.asarray(array.tz_convert(None)), path)}
    items = array.to_numpy(dtype=object)
    return {"dtype": name, "obj": [encoder.encode(item, f"{path}[{i}]") for i, item in enumerate(items)]}


def encode_value(value: Any, *, allow_pickle: bool = False) -> Any:
    """Encode `value` into JSON-ready data in the safe format; raise `WireError` naming what cannot travel.

    `allow_pickle=True` (host to sandbox only) pickles what the safe format cannot carry.
    """
    try:
        return _Encoder(allow_pickle).encode(value, "")
    except RecursionError:
        raise WireError("the value is nested too deeply to be sent") from None


def encode_or_describe(value: Any) -> Any:
    """Encode `value`; if the safe format cannot carry it, send its type and repr instead (an `OpaqueValue`)."""
    try:
        return encode_value(value)
    except Exception:  # WireError, or a library value failing in a way of its own: never lose the step for it
        try:
            text = repr(value)
        except Exception as exc:  # a broken __repr__ must not hide the result
            text = f"<{type_name(value)} object (repr failed: {type(exc).__name__})>"
        if len(text) > _REPR_LIMIT:
            text = text[: _REPR_LIMIT // 2] + " ... " + text[-_REPR_LIMIT // 2 :]
        return {MARKER: "repr", "type": type_name(value), "v": text}


# --- decoding ---------------------------------------------------------------------------------------------------


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise WireError(
            f"malformed {data.get(MARKER)!r} marker: field {key!r} is missing or has the wrong type"
        )
    return value


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise WireError("malformed marker: expected base64 text")
    try:
        return binascii.a2b_base64(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError, binascii.Error):
        raise WireError("malformed marker: invalid base64") from None


class _Decoder:
    def __init__(self, allow_pickle: bool) -> None:
        self.allow_pickle = allow_pickle

    def decode(self, data: Any) -> Any:
        kind = type(data)
        if kind is list:
            return [self.decode(item) for item in data]
        if kind is dict:
            marker = data.get(MARKER)
            if marker is None:
                return {key: self.decode(item) for key, item in data.items()}
            return self.decode_marker(marker, data)
        if data is None or kind in (bool, int, float, str):
            return data
        raise WireError(f"unexpected JSON value of type {kind.__name__}")

    def items(self, data: dict[str, Any]) -> list[Any]:
        return [self.decode(item) for item in _field(data, "v", list)]

    def decode_marker(self, marker: Any, data: dict[str, Any]) -> Any:
        try:
            return self._decode_marker(marker, data)
        except WireError:
            raise
        except (ValueError, TypeError, OverflowError, KeyError, IndexError) as exc:
            raise WireError(f"malformed {marker!r} marker: {type(exc).__name__}: {exc}") from None

    def _decode_marker(self, marker: Any, data: dict[str, Any]) -> Any:
        if marker == "tuple":
            return tuple(self.items(data))
        if marker == "set":
            return set(self.items(data))
        if marker == "frozenset":
            return frozenset(self.items(data))
        if marker == "dict":
            result = {}
            for pair in _field(data, "v", list):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise WireError("malformed 'dict' marker: expected [key, value] pairs")
                result[self.decode(pair[0])] = self.decode(pair[1])
            return result
        if marker == "bytes":
            return _unb64(data.get("v"))
        if marker == "bytearray":
            return bytearray(_unb64(data.get("v")))
        if marker == "int":
            return int(_field(data, "v", str), 16)
        if marker == "complex":
            real, imag = _field(data, "v", list)
            return complex(float(real), float(imag))
        if marker in ("datetime", "date", "time", "timedelta"):
            import datetime

            if marker == "timedelta":
                days, seconds, micros = (int(part) for part in _field(data, "v", list))
                return datetime.timedelta(days=days, seconds=seconds, microseconds=micros)
            return getattr(datetime, marker).fromisoformat(_field(data, "v", str))
        if marker == "decimal":
            from decimal import Decimal

            return Decimal(_field(data, "v", str))
        if marker == "fraction":
            from fractions import Fraction

            numerator, denominator = _field(data, "v", list)
            return Fraction(int(numerator, 16), int(denominator, 16))
        if marker == "uuid":
            from uuid import UUID

            return UUID(_field(data, "v", str))
        if marker == "range":
            start, stop, step = (int(part) for part in _field(data, "v", list))
            return range(start, stop, step)
        if marker == "repr":
            return OpaqueValue(str(_field(data, "type", str)), str(_field(data, "v", str)))
        if marker in ("ndarray", "image") or marker in _PANDAS_KINDS:
            return _decode_optional(self, marker, data)
        if marker == "pickle":
            if not self.allow_pickle:
                raise WireError("refusing a pickle: data from the sandbox must use the safe format")
            import pickle

            return pickle.loads(_unb64(data.get("v")))
        raise WireError(f"unknown value marker {marker!r}")


def _require(module: str, kind: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise WireError(
            f"the sandbox sent a {kind}, but {module.split('.')[0]} is not installed on the host; install it "
            "or convert the value inside the sandbox (e.g. .tolist())"
        ) from None


def _decode_optional(decoder: _Decoder, marker: str, data: dict[str, Any]) -> Any:
    if marker == "ndarray":
        numpy = _require("numpy", "numpy array")
        dtype = numpy.dtype(_field(data, "dtype", str))
        if dtype.kind not in _NDARRAY_KINDS or dtype.fields is not None:
            raise WireError(f"refusing a numpy array of dtype {dtype}")
        shape = tuple(int(n) for n in _field(data, "shape", list))
        raw = _unb64(data.get("v"))
        count = 1
        for n in shape:
            if n < 0:
                raise WireError("malformed 'ndarray' marker: negative dimension")
            count *= n
        if count * dtype.itemsize != len(raw):
            raise WireError("malformed 'ndarray' marker: shape and data size disagree")
        return numpy.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if marker in _PANDAS_KINDS:
        pandas = _require("pandas", _PANDAS_KINDS[marker])
        return _decode_pandas(decoder, pandas, marker, data)
    pil = _require("PIL.Image", "PIL image")
    mode = _field(data, "mode", str)
    if mode not in _IMAGE_MODES:
        raise WireError(f"refusing an image in mode {mode!r}")
    width, height = (int(n) for n in _field(data, "size", list))
    return pil.frombytes(mode, (width, height), _unb64(data.get("v")))


_PANDAS_KINDS = {
    "dataframe": "pandas DataFrame",
    "series": "pandas Series",
    "index": "pandas Index",
    "na": "pandas.NA",
    "nat": "pandas.NaT",
}


def _decode_pandas(decoder: _Decoder, pandas: Any, marker: str, data: dict[str, Any]) -> Any:
    if marker == "na":
        return pandas.NA
    if marker == "nat":
        return pandas.NaT
    if marker == "index":
        return _decode_index(decoder, pandas, _field(data, "v", dict))
    index = _decode_index(decoder, pandas, _field(data, "index", dict))
    if marker == "series":
        array = _decode_array(decoder, pandas, _field(data, "v", dict))
        return pandas.Series(
            array, index=index, name=decoder.decode(data.get("name")), dtype=array.dtype, copy=False
        )
    arrays = [_decode_array(decoder, pandas, column) for column in _field(data, "v", list)]
    columns = _decode_index(decoder, pandas, _field(data, "columns", dict))
    if len(columns) != len(arrays):
        raise WireError("malformed 'dataframe' marker: column names and columns disagree")
    parts = {i: pandas.Series(a, index=index, dtype=a.dtype, copy=False) for i, a in enumerate(arrays)}
    frame = pandas.DataFrame(parts, index=index, copy=False)
    frame.columns = columns
    return frame


def _decode_index(decoder: _Decoder, pandas: Any, data: dict[str, Any]) -> Any:
    import numpy

    if not isinstance(data, dict):
        raise WireError("malformed pandas index")
    if "levels" in data:
        levels = [_decode_index(decoder, pandas, level) for level in _field(data, "levels", list)]
        codes = [decoder.decode(level_codes) for level_codes in _field(data, "codes", list)]
        if not all(
            isinstance(level_codes, numpy.ndarray) and level_codes.dtype.kind == "i" for level_codes in codes
        ):
            raise WireError("malformed pandas MultiIndex: codes must be integer arrays")
        names = [decoder.decode(name) for name in _field(data, "names", list)]
        return pandas.MultiIndex(levels=levels, codes=codes, names=names, verify_integrity=True)
    name = decoder.decode(data.get("name"))
    if "range" in data:
        start, stop, step = (int(part) for part in _field(data, "range", list))
        return pandas.RangeIndex(start, stop, step, name=name)
    array = _decode_array(decoder, pandas, _field(data, "v", dict))
    index = pandas.Index(array, dtype=array.dtype, name=name, copy=False)
    freq = data.get("freq")
    if isinstance(freq, str):
        index = pandas.DatetimeIndex(index, freq=freq)
    return index


def _decode_array(decoder: _Decoder, pandas: Any, data: Any) -> Any:
    import numpy

    if not isinstance(data, dict):
        raise WireError("malformed pandas column")
    if "np" in data:
        array = decoder.decode(data["np"])
        if not isinstance(array, numpy.ndarray) or array.ndim != 1:
            raise WireError("malformed pandas column: expected a one-dimensional array")
        return array
    if "categories" in data:
        categories = _decode_index(decoder, pandas, _field(data, "categories", dict))
        codes = decoder.decode(data.get("codes"))
        if not isinstance(codes, numpy.ndarray) or codes.dtype.kind != "i":
            raise WireError("malformed categorical column: codes must be an integer array")
        dtype = pandas.CategoricalDtype(categories, ordered=bool(data.get("ordered")))
        return pandas.Categorical.from_codes(codes, dtype=dtype)
    items = [decoder.decode(item) for item in _field(data, "obj", list)] if "obj" in data else None
    name = data.get("dtype")
    if name is None:
        array = numpy.empty(len(items or ()), dtype=object)
        array[:] = items  # element by element: a list of lists must not become a 2-D array
        return array
    dtype = pandas.api.types.pandas_dtype(_field(data, "dtype", str))
    if isinstance(dtype, pandas.DatetimeTZDtype):
        utc = decoder.decode(data.get("utc"))
        if not isinstance(utc, numpy.ndarray) or utc.dtype.kind != "M":
            raise WireError("malformed pandas column: expected UTC datetime64 values")
        return pandas.array(utc).tz_localize("UTC").tz_convert(dtype.tz)
    if items is None:
        raise WireError("malformed pandas column: no values")
    return pandas.array(items, dtype=dtype)


def decode_value(data: Any, *, allow_pickle: bool = False) -> Any:
    """Rebuild a value from the safe format; raise `WireError` on anything malformed or unknown.

    The host always decodes with `allow_pickle=False`; only the sandbox accepts pickles (sent by the host).
    """
    try:
        return _Decoder(allow_pickle).decode(data)
    except RecursionError:
        raise WireError("the value is nested too deeply") from None


# --- messages ---------------------------------------------------------------------------------------------------


_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _make_codec() -> tuple[Any, Any]:
    """JSON dumps/loads on CPython's C accelerator directly, skipping the `json` package's slow import."""
    try:
        import _json

        class _Context:
            strict = True
            object_hook = None
            object_pairs_hook = None
            parse_float = float
            parse_int = int
            parse_constant = _CONSTANTS.__getitem__

        scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # any object with these attributes
        encode = _json.make_encoder(
            None, _not_json, _json.encode_basestring, None, ":", ",", False, False, True
        )
    except (ImportError, AttributeError, TypeError):
        import json

        return lambda value: json.dumps(value, ensure_ascii=False, separators=(",", ":")), json.loads

    def dumps(value: Any) -> str:
        return "".join(encode(value, 0))

    def loads(text: str) -> Any:
        try:
            value, end = scan(text, 0)
        except StopIteration as stop:
            raise ValueError(f"expected a JSON value at character {stop.value}") from None
        if end != len(text):
            raise ValueError(f"extra data at character {end}")
        return value

    return dumps, loads


_dumps, _loads = _make_codec()


def dump_message(message: dict[str, Any]) -> bytes:
    """One message as one line of bytes."""
    return _dumps(message).encode("utf-8", "surrogatepass") + b"\n"


def load_message(line: bytes) -> dict[str, Any]:
    """Parse one line into a message dict with a string ``op``; raise `WireError` if it is not one."""
    try:
        message = _loads(line.decode("utf-8", "surrogatepass").rstrip("\n"))
    except (ValueError, RecursionError) as exc:
        raise WireError(f"not a protocol message ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise WireError("not a protocol message (expected a JSON object with an 'op')")
    return message
