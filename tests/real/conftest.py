"""The real-model tier: a local llama.cpp server on the prepared Qwen2.5-Coder-1.5B (`make real-model`).

Each server is started once per session on a free port and stopped at the end, also when tests fail. Every test module
here is marked `real_model`: `make test` leaves them out, `make test-real` runs only them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from codeloop.testing.local_model import LocalModelNotPrepared, find_prepared
from codeloop.testing.local_server import LocalModelServer


def _prepared() -> None:
    try:
        find_prepared()
    except LocalModelNotPrepared as exc:
        # Not a skip: this tier exists to run the real model, so a missing model is a failure that says what to do.
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LocalModelServer]:
    """The model with its GGUF chat template: tools are in the prompt, calls come back as JSON text."""
    _prepared()
    with LocalModelServer() as server:
        yield server


@pytest.fixture(scope="session")
def llama_server_native_tools() -> Iterator[LocalModelServer]:
    """The model with llama-cpp-python's `chatml-function-calling` format: calls come back as `tool_calls`."""
    _prepared()
    with LocalModelServer(chat_format="chatml-function-calling") as server:
        yield server
