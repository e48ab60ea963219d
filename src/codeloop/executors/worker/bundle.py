"""The worker's code as it is shipped: the `BOOTSTRAP` program and the bundle of modules it reads from stdin.

A worker starts as a bare interpreter, `python -I -c BOOTSTRAP`, in whatever sandbox or container it runs in; the
host then writes `worker_bundle()` to its stdin: `codeloop.executors.output`, `worker.protocol`, `worker.workdir`,
`worker.limits` and `worker.guest`, as source or as marshalled code objects, installed as the `codeloop_sandbox_*` modules. The
sandbox needs no copy of codeloop.
"""

from __future__ import annotations

import marshal
import os
import sys
from pathlib import Path

__all__ = ["BOOTSTRAP", "worker_bundle", "python_is_this_interpreter"]

_BUNDLE_MODULES = (
    ("codeloop_sandbox_output", "output.py"),
    ("codeloop_sandbox_protocol", "worker/protocol.py"),
    ("codeloop_sandbox_workdir", "worker/workdir.py"),
    ("codeloop_sandbox_limits", "worker/limits.py"),
    ("codeloop_sandbox_worker", "worker/guest.py"),
)

_ZYGOTE_MODULE = ("codeloop_sandbox_zygote", "worker/zygote.py")

BOOTSTRAP = """import sys, types
class _Deferred(types.ModuleType):
    def __getattr__(self, attribute):
        del sys.modules[self.__name__]
        real = __import__(self.__name__)
        sys.modules[self.__name__] = real
        return getattr(real, attribute)
def _codeloop_load():
    sys.modules.setdefault("linecache", _Deferred("linecache"))
    reader = sys.stdin.buffer
    module = None
    for _ in range(int(reader.readline())):
        name = reader.readline().decode().strip()
        kind = reader.readline().strip()
        blob = reader.read(int(reader.readline()))
        code = __import__("marshal").loads(blob) if kind == b"marshal" else compile(blob, name, "exec")
        module = types.ModuleType(name)
        module.__file__ = name
        sys.modules[name] = module
        exec(code, module.__dict__)
    module.main(reader)
_codeloop_load()
"""
"""The program given to `python -c` in the sandbox: it loads the worker modules sent on stdin and runs them.

`linecache` is imported only when first used: it pulls in `tokenize` and `re`, ~8 ms of every worker's start,
and is needed only to show a traceback line that is not in the step's own code."""

_bundles: dict[str, bytes] = {}


def worker_bundle(kind: str = "source", *, zygote: bool = False) -> bytes:
    """The worker modules as the bootstrap reads them: as source (any Python >= 3.10) or as marshalled code
    objects ("marshal", only for an interpreter identical to this one; skips compiling at every start).

    With `zygote`, the last module (whose `main` the bootstrap runs) is the zygote of `SandboxPool`, which forks
    workers instead of being one."""
    if kind not in ("source", "marshal"):
        raise ValueError(f"bundle kind must be 'source' or 'marshal', got {kind!r}")
    key = f"{kind}+zygote" if zygote else kind
    cached = _bundles.get(key)
    if cached is not None:
        return cached
    executors = Path(__file__).parent.parent  # the paths in _BUNDLE_MODULES are relative to it
    modules = (*_BUNDLE_MODULES, _ZYGOTE_MODULE) if zygote else _BUNDLE_MODULES
    parts = [f"{len(modules)}\n".encode()]
    for name, filename in modules:
        source = (executors / filename).read_bytes()
        # optimize=2 drops docstrings (and asserts, which these modules do not use): less to send and load
        blob = (
            marshal.dumps(compile(source, name, "exec", dont_inherit=True, optimize=2))
            if kind == "marshal"
            else source
        )
        parts.append(f"{name}\n{kind}\n{len(blob)}\n".encode() + blob)
    _bundles[key] = bundle = b"".join(parts)
    return bundle


def python_is_this_interpreter(python: str) -> bool:
    """Whether `python` resolves to the interpreter running this code (so marshalled code objects fit it)."""
    return os.path.realpath(python) == os.path.realpath(sys.executable)
