"""`codeloop eval` and `codeloop batch` results in the run store: each record kept with the run it scores."""

from __future__ import annotations

import time
from typing import Any

from .base import EventRecord, Store, StoreError

__all__ = ["JOB_RECORD_EVENT", "StoreResultSink", "job_record"]

JOB_RECORD_EVENT = "JobRecord"
"""The event type of an eval or batch record (success, error kind, ... as in the results JSONL) in a run."""


class StoreResultSink:
    """A `codeloop.jobs.ResultSink` appending each record to its run's events in the store (`spec`: as `store=`).

    A record without a run (the agent could not even be built) has nowhere to go and stays in the JSONL file
    only. A store that fails is reported on stderr and the eval goes on: the JSONL file is the results' record.
    """

    def __init__(self, spec: Any) -> None:
        from .opening import open_store

        store = open_store(spec)
        assert store is not None, "StoreResultSink needs a store, not None"
        self.store: Store = store
        self.failures = 0

    def record(self, record: dict[str, Any]) -> None:
        """Keep `record` with its run (as the run's last event)."""
        run_id = record.get("run_id")
        if not run_id:
            return
        try:
            seq = max((e.seq for e in self.store.events(run_id)), default=-1) + 1
            self.store.add_events(run_id, [EventRecord(run_id, seq, JOB_RECORD_EVENT, time.time(), record)])
        except StoreError as exc:
            self.failures += 1
            if self.failures == 1:
                import sys

                print(f"codeloop: records are not kept in the run store: {exc}", file=sys.stderr)


def job_record(store: Store, run_id: str) -> dict[str, Any] | None:
    """The eval or batch record kept with run `run_id` (the latest), or None."""
    records = [e.data for e in store.events(run_id) if e.type == JOB_RECORD_EVENT]
    return records[-1] if records else None
