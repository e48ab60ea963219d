"""Every payload of the security corpus (../shared/security, tests/payloads and the sandbox's own
tests/payloads_sandbox) against SandboxExecutor as shipped, in the "default" and "data agent" profiles, and every
benign program, judged by tests/security_harness.py.

The sandbox has no known limitations: every payload must be contained (no oracle fires: canary file, canary
environment variable, file creation, shell marker, socket listener), every resource payload must stop within 10 s
and 1 GiB with the same executor then running benign/001 exactly, and every benign program must print exactly its
expected output.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.sandbox_support import bwrap_problem
from tests.security_harness import (
    CORPUS,
    OWN_PAYLOADS,
    PROFILES,
    Report,
    load_benign,
    load_payloads,
    run_corpus,
)

SANDBOX_PAYLOADS = Path(__file__).resolve().parent / "payloads_sandbox"
PAYLOADS = load_payloads((CORPUS / "payloads", OWN_PAYLOADS, SANDBOX_PAYLOADS))
BENIGN = load_benign()

pytestmark = [
    pytest.mark.skipif(bwrap_problem() is not None, reason=bwrap_problem() or ""),
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or os.geteuid() != 0,
        reason="the security harness listens on 127.0.0.1:9 (needs root) and reads /proc (needs Linux)",
    ),
]


@pytest.fixture(scope="module")
def report() -> Iterator[Report]:
    yield run_corpus("sandbox", {}, profiles=tuple(PROFILES), payloads=PAYLOADS, concurrency=8)


def test_the_corpus_is_there() -> None:
    names = {p.name for p in PAYLOADS}
    assert len(names) >= 60 and {"001_import_os_system", "107_while_true_busy", "301_fork_bomb"} <= names
    assert len(BENIGN) >= 10


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("payload", [p.name for p in PAYLOADS])
def test_payload_is_contained(report: Report, payload: str, profile: str) -> None:
    verdict = report.verdict(payload, profile)
    detail = f"{verdict.summary()}\nreport: {verdict.report}\nstdout: {verdict.stdout[-1500:]}\nstderr: {verdict.stderr[-1500:]}"
    assert verdict.contained, detail


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("program", [p.name for p in BENIGN])
def test_benign_output_is_exact(report: Report, program: str, profile: str) -> None:
    exact, output = report.benign[profile][program]
    assert exact, output


def test_resource_payloads_stop_within_the_bounds_and_leave_a_usable_executor(report: Report) -> None:
    resource = [v for v in report.payloads if "f" in v.goals]
    assert len(resource) >= 20
    for verdict in resource:
        assert verdict.step_seconds is not None and verdict.step_seconds < 10, verdict.summary()
        assert verdict.report["peak_rss_bytes"] < 1 << 30, verdict.summary()
        assert verdict.report["benign_after"] == BENIGN[0].expected, verdict.summary()
