"""`Store.list_runs` filters and paging (model, date range, top-level only, offset), the same on SQLite and on a
real PostgreSQL server the tests start themselves: what the run browser (`codeloop ui`) queries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.postgres_support import postgres_problem, psycopg_problem

from codeloop.store import RunRecord, Store
from codeloop.store.sqlite import SQLiteStore

_PG_PROBLEM = postgres_problem() or psycopg_problem()

# Six runs an hour apart (started at T0 + k hours); the fourth is a managed agent's run under the third.
T0 = 1_780_000_000.0
HOUR = 3600.0
RUNS = [
    # run_id, model_id, session, state, parent
    ("r0", "gpt-4o", "alice", "success", None),
    ("r1", "gpt-4o-mini", "alice", "error", None),
    ("r2", "gpt-4o", "bob", "success", None),
    ("r3", "gpt-4o-mini", None, "success", "r2"),
    ("r4", "claude-sonnet-4-5", "bob", "max_steps", None),
    ("r5", "gpt-4o", None, "running", None),
]


def _fill(store: Store) -> None:
    for k, (run_id, model, session, state, parent) in enumerate(RUNS):
        record = RunRecord(
            run_id=run_id,
            agent="calc",
            agent_class="CodeAgent",
            task=f"task {k}",
            model_id=model,
            session=session,
            parent_run_id=parent,
            started_at=T0 + k * HOUR,
        )
        store.start_run(record)
        if state != "running":
            record.state, record.ended_at = state, record.started_at + 5
            store.finish_run(record)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened: Store = SQLiteStore(tmp_path / "runs.db")
    else:
        if _PG_PROBLEM is not None:
            pytest.skip(f"PostgreSQL store not testable here: {_PG_PROBLEM}")
        from codeloop.store.postgres import PostgresStore

        opened = PostgresStore(request.getfixturevalue("postgres_url"))
    _fill(opened)
    try:
        yield opened
    finally:
        opened.close()


def _ids(runs: list[RunRecord]) -> list[str]:
    return [r.run_id for r in runs]


def test_runs_filter_by_model_exactly(store: Store) -> None:
    assert _ids(store.list_runs(model="gpt-4o")) == ["r5", "r2", "r0"]  # not gpt-4o-mini's
    assert _ids(store.list_runs(model="gpt-4o-mini", session="alice")) == ["r1"]
    assert store.list_runs(model="gpt-5") == []


def test_runs_filter_by_a_half_open_date_range(store: Store) -> None:
    # since is inclusive, until exclusive: [T0+1h, T0+4h) holds r1, r2, r3.
    assert _ids(store.list_runs(since=T0 + HOUR, until=T0 + 4 * HOUR)) == ["r3", "r2", "r1"]
    assert _ids(store.list_runs(since=T0 + 4.5 * HOUR)) == ["r5"]
    assert _ids(store.list_runs(until=T0 + 1)) == ["r0"]
    assert _ids(store.list_runs(since=T0 + 2 * HOUR, state="success")) == ["r3", "r2"]


def test_top_level_leaves_managed_agents_runs_out(store: Store) -> None:
    assert _ids(store.list_runs(top_level=True)) == ["r5", "r4", "r2", "r1", "r0"]
    assert _ids(store.list_runs(model="gpt-4o-mini", top_level=True)) == ["r1"]


def test_pages_with_offset_and_limit_cover_every_run_once(store: Store) -> None:
    pages = [_ids(store.list_runs(limit=2, offset=offset)) for offset in (0, 2, 4, 6)]
    assert pages == [["r5", "r4"], ["r3", "r2"], ["r1", "r0"], []]
    assert _ids(store.list_runs(offset=4)) == ["r1", "r0"]  # an offset without a limit: the rest
    assert _ids(store.list_runs(top_level=True, limit=2, offset=2)) == ["r2", "r1"]
