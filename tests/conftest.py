"""Shared fixtures. Every model in these tests is scripted; nothing touches the internet."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests must never reach a real provider, whatever the developer's shell exports.
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN", "CODELOOP_MODEL"):
        monkeypatch.delenv(name, raising=False)
