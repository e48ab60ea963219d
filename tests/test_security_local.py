"""Every payload and every benign program of the security corpus (../shared/security and tests/payloads) against
LocalExecutor as shipped, in the "default" and "data agent" profiles, judged by tests/security_harness.py.

A payload LocalExecutor cannot contain is listed in KNOWN_LIMITATIONS with the exact outcome it has today, and in
the README (Executors, LocalExecutor, known limitations); if the outcome changes (better or worse), the test fails and both must be updated.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest
from tests.security_harness import PROFILES, Report, load_benign, load_payloads, run_corpus

PAYLOADS = load_payloads()
BENIGN = load_benign()

# a native call that never returns freezes an in-process host; the harness kills it, so keep that wait short
KILL_AFTER = {"*": 30.0, "225_native_infinite_sum": 12.0}


def _known_limitations() -> dict[tuple[str, str], list[str]]:
    """(payload, profile) -> what fires today. Empty lists are never stored: those payloads must be contained."""
    known: dict[tuple[str, str], list[str]] = {
        # the documented purpose of modules authorized in the data-agent profile: no file or network mediation
        ("031_requests_ssrf_localhost", "data agent"): ["e"],
        ("239_sqlite3_attach_file", "data agent"): ["c"],
        ("241_zipfile_write", "data agent"): ["c"],
        # sum() over an endless iterator never returns to the interpreter: nothing in-process can stop it
        ("225_native_infinite_sum", "default"): ["host-hung (killed by the harness)"],
        ("225_native_infinite_sum", "data agent"): ["host-hung (killed by the harness)"],
    }
    if importlib.util.find_spec("pandas") is not None:
        # pandas.read_csv reads any file the host can read: the documented purpose of an authorized module
        known[("085_pandas_read_csv", "data agent")] = ["a"]
    return known


KNOWN_LIMITATIONS = _known_limitations()


@pytest.fixture(scope="module")
def report() -> Iterator[Report]:
    yield run_corpus("local", {}, profiles=tuple(PROFILES), concurrency=12, kill_after=KILL_AFTER)


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("payload", [p.name for p in PAYLOADS])
def test_payload(report: Report, payload: str, profile: str) -> None:
    verdict = report.verdict(payload, profile)
    outcome = verdict.fired + verdict.f_failures
    known = KNOWN_LIMITATIONS.get((payload, profile))
    detail = f"{verdict.summary()}\nstdout: {verdict.stdout[-1500:]}\nstderr: {verdict.stderr[-1500:]}"
    if known is None:
        assert verdict.contained, detail
    else:
        assert outcome == known, f"known limitation changed: expected {known}\n{detail}"


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("program", [p.name for p in BENIGN])
def test_benign_output_is_exact(report: Report, program: str, profile: str) -> None:
    exact, output = report.benign[profile][program]
    assert exact, output


def test_resource_payloads_return_within_bounds(report: Report) -> None:
    resource = [
        v for v in report.payloads if "f" in v.goals and (v.payload, v.profile) not in KNOWN_LIMITATIONS
    ]
    assert resource, "the corpus must contain resource payloads"
    for verdict in resource:
        assert verdict.step_seconds is not None and verdict.step_seconds < 10, verdict.summary()
        assert verdict.report["peak_rss_bytes"] < 1 << 30, verdict.summary()
