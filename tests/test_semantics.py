"""Same program, same output: plain CPython `exec` vs every executor kind.

Each program prints what it computes; the executor's captured logs must equal what the program writes to stdout
under plain `exec` (top-level `await` is run the way asyncio's REPL does: compiled with PyCF_ALLOW_TOP_LEVEL_AWAIT,
the resulting coroutine driven by an event loop). Programs use modules every executor authorizes by default, plus
asyncio, which each executor here is given.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import io
import textwrap
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

PROGRAMS: dict[str, str] = {
    "generators": """
        def countdown(n):
            while n > 0:
                received = yield n
                if received:
                    n = received
                n -= 1
            return "done"

        gen = countdown(5)
        print(next(gen), gen.send(3), next(gen))
        print(list(countdown(3)))

        def chain(*its):
            for it in its:
                result = yield from it
            return result

        print(list(chain([1, 2], (x * x for x in range(3)))))

        def closing():
            try:
                yield 1
                yield 2
            finally:
                print("generator closed")

        g = closing()
        print(next(g))
        g.close()
        try:
            g2 = countdown(2)
            next(g2)
            g2.throw(ValueError("boom"))
        except ValueError as err:
            print("thrown:", err)
        squares = (i * i for i in range(5))
        print(sum(squares), sum(squares))
    """,
    "top_level_await": """
        import asyncio

        async def fetch(i):
            await asyncio.sleep(0.001 * i)
            return i * 10

        results = await asyncio.gather(*(fetch(i) for i in range(4)))
        print(results)

        async def agen(n):
            for i in range(n):
                yield i
                await asyncio.sleep(0)

        print([x async for x in agen(3)])

        async def with_timeout():
            try:
                await asyncio.wait_for(asyncio.sleep(1), timeout=0.01)
            except asyncio.TimeoutError:
                return "timed out"

        print(await with_timeout())
    """,
    "match": """
        from dataclasses import dataclass

        @dataclass
        class Point:
            x: int
            y: int

        class Circle:
            __match_args__ = ("center", "radius")

            def __init__(self, center, radius):
                self.center, self.radius = center, radius

        def describe(shape):
            match shape:
                case Point(0, 0):
                    return "origin"
                case Point(x=0, y=y):
                    return f"on y axis at {y}"
                case Point(x, y) if x == y:
                    return f"diagonal {x}"
                case Circle(Point(cx, cy), r) if r > 10:
                    return f"big circle at {cx},{cy}"
                case Circle(_, radius=r):
                    return f"circle r={r}"
                case {"kind": "box", "size": [w, h, *rest]}:
                    return f"box {w}x{h} extra={rest}"
                case [first, *middle, last]:
                    return f"seq {first}..{last} ({len(middle)} between)"
                case str() | bytes() as text:
                    return f"text {text!r}"
                case int(n) if n < 0:
                    return "negative"
                case _:
                    return "unknown"

        for s in [Point(0, 0), Point(0, 5), Point(3, 3), Circle(Point(1, 2), 20), Circle(Point(0, 0), 1),
                  {"kind": "box", "size": [1, 2, 3, 4]}, [1, 2, 3, 4], "hi", -4, 3.5]:
            print(describe(s))
    """,
    "walrus_and_unpacking": """
        data = [3, 8, 1, 9, 4]
        if (n := len(data)) > 3:
            print("long list", n)
        print([y for x in data if (y := x * 2) > 6])
        first, *middle, last = data
        print(first, middle, last)
        (a, b), *rest = [(1, 2), 3, 4]
        print(a, b, rest)
        merged = {**{"a": 1}, **{"b": 2}, "c": 3}
        print(merged, [*range(3), *"ab"], {*[1, 1, 2]})

        def f(*args, sep="-", **kwargs):
            return sep.join(map(str, args)) + str(sorted(kwargs.items()))

        print(f(*[1, 2], 3, **{"k": 1}, sep="+"))

        def positional(a, b, /, c, *, d):
            return a + b + c + d

        print(positional(1, 2, c=3, d=4))
        while (chunk := data[:2]):
            data = data[2:]
            print("chunk", chunk)
    """,
    "scopes": """
        counter = 0

        def bump():
            global counter
            counter += 1
            return counter

        bump(); bump()
        print(counter)

        def make_acc():
            total = 0

            def add(x):
                nonlocal total
                total += x
                return total

            return add

        acc = make_acc()
        acc(5)
        print(acc(10))
        funcs = [lambda i=i: i * 2 for i in range(3)]
        print([fn() for fn in funcs])
        x = "global"

        def outer():
            x = "enclosing"

            def inner():
                return x

            return inner()

        print(outer(), x)

        class Scoped:
            value = 10
            doubled = [value * 2 for _ in range(1)] if False else None

        print(Scoped.value, Scoped.doubled)
    """,
    "dunder_methods": """
        import functools

        @functools.total_ordering
        class Money:
            __slots__ = ("cents",)

            def __init__(self, cents):
                self.cents = cents

            def __add__(self, other):
                return Money(self.cents + (other.cents if isinstance(other, Money) else other))

            __radd__ = __add__

            def __mul__(self, k):
                return Money(self.cents * k)

            def __eq__(self, other):
                return isinstance(other, Money) and self.cents == other.cents

            def __lt__(self, other):
                return self.cents < other.cents

            def __hash__(self):
                return hash(self.cents)

            def __repr__(self):
                return f"Money({self.cents})"

            def __str__(self):
                return f"${self.cents / 100:.2f}"

            def __format__(self, spec):
                return format(self.cents / 100, spec)

            def __bool__(self):
                return self.cents != 0

        class Basket:
            def __init__(self, *items):
                self._items = list(items)

            def __len__(self):
                return len(self._items)

            def __iter__(self):
                return iter(self._items)

            def __getitem__(self, i):
                return self._items[i]

            def __contains__(self, item):
                return item in self._items

            def __call__(self, factor):
                return [i * factor for i in self._items]

        m = Money(150) + Money(250) + 5
        print(m, repr(m), f"{m:.1f}", bool(Money(0)), sum([Money(1), Money(2)]))
        print(Money(1) < Money(2), Money(3) >= Money(2), len({Money(1), Money(1)}))
        b = Basket(Money(1), Money(2))
        print(len(b), [str(x) for x in b], b[1], Money(2) in b, b(3))

        class Config:
            def __init__(self):
                super().__setattr__("_data", {})

            def __getattr__(self, name):
                try:
                    return self._data[name]
                except KeyError:
                    raise AttributeError(name) from None

            def __setattr__(self, name, value):
                self._data[name] = value

        c = Config()
        c.debug = True
        print(c.debug, hasattr(c, "missing"), getattr(c, "missing", "default"))

        class Secret:
            def __init__(self):
                self.__hidden = 42

            def reveal(self):
                return self.__hidden

        print(Secret().reveal(), Secret()._Secret__hidden)
    """,
    "classes_and_decorators": """
        import functools
        from dataclasses import dataclass, field

        def logged(prefix):
            def deco(fn):
                @functools.wraps(fn)
                def wrapper(*args, **kwargs):
                    print(prefix, fn.__name__, args)
                    return fn(*args, **kwargs)
                return wrapper
            return deco

        @logged(">>")
        def add(a, b):
            "Add two numbers."
            return a + b

        print(add(1, 2), add.__name__, add.__doc__, add.__wrapped__(3, 4))

        def register(cls):
            cls.registered = True
            return cls

        class Meta(type):
            def __new__(mcs, name, bases, ns):
                ns["created_by"] = "Meta"
                return super().__new__(mcs, name, bases, ns)

        @register
        class Base(metaclass=Meta):
            plugins = []

            def __init_subclass__(cls, **kwargs):
                super().__init_subclass__(**kwargs)
                Base.plugins.append(cls.__name__)

            @property
            def kind(self):
                return type(self).__name__.lower()

            @classmethod
            def make(cls):
                return cls()

            @staticmethod
            def version():
                return 2

        class Child(Base):
            pass

        print(Base.registered, Base.created_by, Base.plugins, Child.make().kind, Child.version())
        print(type(Child).__name__, isinstance(Child(), Base), issubclass(Child, Base), Child.__qualname__)

        @dataclass(order=True)
        class Item:
            priority: int
            name: str = field(compare=False)
            tags: list = field(default_factory=list)

        items = sorted([Item(3, "c"), Item(1, "a"), Item(2, "b")])
        print(items[0], [i.name for i in items])
    """,
    "context_managers_and_exceptions": """
        class Resource:
            def __init__(self, name, suppress=False):
                self.name, self.suppress = name, suppress

            def __enter__(self):
                print("enter", self.name)
                return self

            def __exit__(self, exc_type, exc, tb):
                print("exit", self.name, exc_type.__name__ if exc_type else None)
                return self.suppress

        with Resource("a") as a, Resource("b", suppress=True):
            raise KeyError("inside")
        print("after with")

        class AppError(Exception):
            pass

        def load():
            try:
                {}["missing"]
            except KeyError as err:
                raise AppError("could not load") from err

        try:
            load()
        except AppError as err:
            print(type(err).__name__, err, "cause:", repr(err.__cause__))

        def order():
            try:
                print("try")
                return "returned"
            finally:
                print("finally")

        print(order())
        try:
            try:
                1 / 0
            except ZeroDivisionError:
                raise ValueError("second")
        except ValueError as err:
            print("context:", type(err.__context__).__name__)
        try:
            raise ExceptionGroup("many", [ValueError(1), TypeError(2)])
        except* ValueError as group:
            print("value errors:", [str(e) for e in group.exceptions])
        except* TypeError as group:
            print("type errors:", len(group.exceptions))
        for i in range(3):
            try:
                if i == 1:
                    continue
                print("loop", i)
            finally:
                print("cleanup", i)
    """,
    "stdlib_and_formatting": """
        import collections
        import itertools
        import json
        import math
        import re
        import statistics
        from enum import Enum

        class Color(Enum):
            RED = 1
            GREEN = 2

        words = re.findall(r"\\w+", "the cat and the hat and the bat")
        counts = collections.Counter(words)
        print(counts.most_common(2), Color.GREEN, Color(1).name, list(Color))
        print("{:>8}|{:<6}|{:^7}|{:08.3f}".format("right", "left", "mid", math.pi))
        print("{name} is {age}".format_map({"name": "Ada", "age": 36}), "{0[1]}".format([5, 6]))
        print(f"{statistics.mean([1, 2, 3, 4]):.2f} {math.comb(5, 2)} {list(itertools.pairwise('abc'))}")
        print(json.dumps({"b": [1, 2], "a": None}, sort_keys=True), "%s-%05.1f" % ("x", 2.5))
        Pair = collections.namedtuple("Pair", "left right")
        p = Pair(1, 2)
        print(p._replace(left=9), p._asdict(), Pair._fields)
        print(sorted(["b", "A", "c"], key=str.lower), getattr(p, "left"), hasattr(p, "middle"))
        print(str.format("{}+{}", 1, 2), list(map("{:02d}".format, [1, 2])))
    """,
}


def _plain_exec(source: str) -> str:
    code = compile(source, "<plain>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        result = eval(code, namespace)
        if asyncio.iscoroutine(result):
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(result)
            finally:
                loop.close()
    return buffer.getvalue()


EXTRA_IMPORTS = ["asyncio"]


def _local(**kwargs: Any) -> Callable[[], Any]:
    def make() -> Any:
        from codeloop.executors.local import LocalExecutor

        return LocalExecutor(additional_authorized_imports=EXTRA_IMPORTS, **kwargs)

    return make


def _sandbox() -> Any:
    from codeloop.executors.transports.sandbox import SandboxExecutor  # type: ignore[import-not-found]

    return SandboxExecutor(additional_authorized_imports=EXTRA_IMPORTS)


EXECUTOR_KINDS: dict[str, Callable[[], Any]] = {
    "local": _local(),
    "local-worker-thread": _local(inline=False),
}
if importlib.util.find_spec("codeloop.executors.transports.sandbox") is not None:
    EXECUTOR_KINDS["sandbox"] = _sandbox


@pytest.fixture(params=sorted(EXECUTOR_KINDS))
def executor(request: pytest.FixtureRequest) -> Iterator[Any]:
    made = EXECUTOR_KINDS[request.param]()
    try:
        yield made
    finally:
        made.close()


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_output_as_plain_exec(executor: Any, name: str) -> None:
    source = textwrap.dedent(PROGRAMS[name])
    expected = _plain_exec(source)
    assert expected.strip(), "the program must print something to compare"
    result = executor.run(source)
    assert result.logs == expected


def test_state_persists_across_steps_like_one_program(executor: Any) -> None:
    steps = [
        "import math\nfrom dataclasses import dataclass\n\n@dataclass\nclass P:\n    x: float\n",
        "def norm(p):\n    return math.sqrt(p.x ** 2)\n\npoints = [P(-3.0), P(4.0)]\n",
        "total = 0\nfor p in points:\n    total += norm(p)\nprint(total, type(points[0]).__name__)\n",
    ]
    assert _plain_exec("\n".join(steps)) == "".join(executor.run(step).logs for step in steps)


def test_worker_thread_kind_really_runs_off_the_main_thread() -> None:
    from codeloop.executors.local import LocalExecutor

    with LocalExecutor(inline=False, additional_authorized_imports=["threading"]) as worker_executor:
        result = worker_executor.run(
            "import threading\nthreading.current_thread() is threading.main_thread()"
        )
    assert result.output is False
    with LocalExecutor(additional_authorized_imports=["threading"]) as inline_executor:
        result = inline_executor.run(
            "import threading\nthreading.current_thread() is threading.main_thread()"
        )
    assert result.output is (threading.current_thread() is threading.main_thread())
