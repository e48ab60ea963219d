"""Shared fixtures. Every model in these tests is scripted; nothing touches the internet."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests must never reach a real provider, whatever the developer's shell exports.
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN", "CODELOOP_MODEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True, scope="session")
def _runs_recorded_in_a_tmp_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Agents record every run by default into $CODELOOP_HOME/runs.db; the suite must never write the user's.
    import os

    os.environ["CODELOOP_HOME"] = str(tmp_path_factory.mktemp("codeloop_home"))


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_is_deliverable() -> None:
    # A shell starts background jobs (`make test &`, some CI runners) with SIGINT ignored, and Python keeps
    # it ignored, which children then inherit. Tests that press Ctrl-C need the normal handler; installing it
    # here also gives subprocesses the default disposition back.
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# A real PostgreSQL server (initdb + pg_ctl in a temporary directory), for the PostgreSQL run-store tests.
from tests.postgres_support import postgres_server, postgres_url  # noqa: E402, F401
