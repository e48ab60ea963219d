"""What the run browser shows, as JSON-ready dicts read from a run store: run rows, one run's timeline, and two
runs compared step by step.

Nothing here needs a web framework (the routes are in `runs.py`), so every view can be checked on its own. Times
come from what the recorder keeps: each step's `timing`, the `marks` of its `StepFinished` event (when the model
answered, when the code started, when the observation came back) and the times of `ToolCallStarted` events; a
managed agent's run is placed in the step of its manager during which it started.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

from ..store.base import EventRecord, RunRecord, Store

__all__ = [
    "KNOWN_STATES",
    "MAX_PAGE",
    "MAX_TEXT",
    "RunQuery",
    "run_row",
    "run_timeline",
    "compare_runs",
    "parse_time",
]

KNOWN_STATES = ("running", "success", "max_steps", "interrupted", "error", "budget", "awaiting_approval")
"""States offered as filter suggestions (any state a store holds can still be typed in)."""

MAX_PAGE = 500
"""The most runs one page of `/api/runs` returns."""

MAX_TEXT = 20_000
"""Characters of one text (code, observation, model output) a timeline carries; `codeloop runs export` has all."""

_MAX_DEPTH = 8  # nested managed agents shown; deeper ones are linked, not inlined


@dataclass
class RunQuery:
    """A page of the run list: filters as `Store.list_runs` takes them, and the page's place."""

    state: str | None = None
    session: str | None = None
    model: str | None = None
    since: float | None = None
    until: float | None = None
    include_children: bool = False
    """Also list managed agents' runs (by default they appear inside their manager's timeline)."""
    offset: int = 0
    limit: int = 50

    @classmethod
    def from_params(cls, params: Any) -> RunQuery:
        """Read a query string's parameters; raises `ValueError` naming a bad parameter and what it takes."""
        unknown = sorted(set(params) - _QUERY_PARAMS)
        if unknown:
            raise ValueError(
                f"unknown query parameter(s) {', '.join(unknown)}; use {', '.join(sorted(_QUERY_PARAMS))}"
            )

        def text(name: str) -> str | None:
            value = str(params.get(name, "")).strip()
            return value or None

        query = cls(state=text("state"), session=text("session"), model=text("model"))
        query.since = parse_time(params.get("since", ""), "since")
        query.until = parse_time(params.get("until", ""), "until")
        if query.since is not None and query.until is not None and query.until <= query.since:
            raise ValueError("until must be later than since (the range is since <= started < until)")
        query.include_children = _flag(params.get("children", ""), "children")
        query.offset = _integer(params.get("offset", ""), "offset", 0, 0, None)
        query.limit = _integer(params.get("limit", ""), "limit", 50, 1, MAX_PAGE)
        return query

    def fetch(self, store: Store) -> dict[str, Any]:
        """This page of runs, with where the next and previous pages start (None at either end)."""
        runs = store.list_runs(
            state=self.state,
            session=self.session,
            model=self.model,
            since=self.since,
            until=self.until,
            top_level=not self.include_children,
            offset=self.offset,
            limit=self.limit + 1,  # one more tells whether a next page exists, without counting every run
        )
        more = len(runs) > self.limit
        return {
            "runs": [run_row(run, store) for run in runs[: self.limit]],
            "offset": self.offset,
            "limit": self.limit,
            "next_offset": self.offset + self.limit if more else None,
            "previous_offset": max(self.offset - self.limit, 0) if self.offset else None,
            "states": list(KNOWN_STATES),
        }


_QUERY_PARAMS = {"state", "session", "model", "since", "until", "children", "offset", "limit"}


def _flag(value: str, name: str) -> bool:
    lowered = str(value).strip().lower()
    if lowered in ("", "0", "false", "no"):
        return False
    if lowered in ("1", "true", "yes"):
        return True
    raise ValueError(f"{name}={value!r}: use 1 or 0")


def _integer(value: str, name: str, default: int, low: int, high: int | None) -> int:
    if str(value).strip() == "":
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number") from None
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"{low} or more"
        raise ValueError(f"{name}={number} is out of range: use a number {bound}")
    return number


def parse_time(value: Any, name: str) -> float | None:
    """A time parameter as seconds since the epoch: a number of seconds, or an ISO 8601 date or date-time
    (`2026-11-30`, `2026-11-30T14:05`, with an offset such as `+01:00` or `Z`; without one, UTC). Empty: None."""
    text = str(value).strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
        raise ValueError(f"{name}={text!r} is not a time")
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{name}={text!r} is not a time: give seconds since the epoch or an ISO 8601 date "
            "(2026-11-30) or date-time (2026-11-30T14:05:00+01:00; UTC when no offset is given)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


# --- one run ----------------------------------------------------------------------------------------------------


def run_row(run: RunRecord, store: Store | None = None) -> dict[str, Any]:
    """A run as a line of the list: its fields without the configuration, plus its duration.

    The store writes a run's step count and usage when the run ends; for a run still going on (given the
    `store`), they are counted from the steps recorded so far, so the list shows its progress."""
    row = run.to_dict()
    del row["config"]
    row["output"] = _clip(_preview(run.output), 500)
    row["duration_s"] = None if run.ended_at is None else max(run.ended_at - run.started_at, 0.0)
    if store is not None and run.state == "running":
        steps = store.steps(run.run_id)
        usages = [step.get("token_usage") or {} for step in steps]
        row["step_count"] = sum(1 for step in steps if step.get("type") == "action")
        row["input_tokens"] = sum(int(u.get("input_tokens", 0) or 0) for u in usages)
        row["output_tokens"] = sum(int(u.get("output_tokens", 0) or 0) for u in usages)
    return row


def run_timeline(store: Store, run_id: str) -> dict[str, Any]:
    """One run as the timeline page shows it: the run, its steps with their effects, its managed agents' runs
    (nested timelines, each placed in the step that started it), its other events and its effect journal.

    `run_id` may be a unique prefix; raises `codeloop.store.RunNotFound`."""
    return _timeline(store, store.get_run(run_id), depth=0, seen=set())


def _timeline(store: Store, run: RunRecord, *, depth: int, seen: set[str]) -> dict[str, Any]:
    seen.add(run.run_id)
    events = store.events(run.run_id)
    children = [c for c in store.children(run.run_id) if c.run_id not in seen]  # a corrupt store may loop
    price = _pricer(run)
    steps = [
        view
        for index, step in enumerate(store.steps(run.run_id))
        if (view := _step_view(index, step, run, events, price)) is not None
    ]
    for child in children:
        host = next((s for s in steps if _within(child.started_at, s)), None)
        if host is not None:
            host["child_run_ids"].append(child.run_id)
            host["effects"].append(_child_effect(child, run.started_at))
    for step in steps:
        step["effects"].sort(key=lambda e: (e["offset_s"] is None, e["offset_s"] or 0.0))
    nested = (
        [_timeline(store, child, depth=depth + 1, seen=seen) for child in children]
        if depth < _MAX_DEPTH
        else []
    )
    journal = [
        {
            "seq": e.seq,
            "kind": e.kind,
            "status": e.status,
            "parent": e.parent,
            "result": _clip(_preview(e.result), 300),
        }
        for e in store.journal(run.run_id).entries()
    ]
    return {
        "run": {**run_row(run, store), "output": _clip(_preview(run.output), MAX_TEXT), "config": run.config},
        "steps": steps,
        "children": nested,
        "child_runs": [run_row(child) for child in children],
        "events": [_event_view(e, run.started_at) for e in events if e.type in _NOTABLE_EVENTS],
        "journal": journal,
    }


# Events the timeline lists on their own (the others are what steps already show).
_NOTABLE_EVENTS = frozenset({"StepError", "ModelRetry", "ToolProgress", "RunFinished"})


def _event_view(event: EventRecord, start: float) -> dict[str, Any]:
    data = {k: v for k, v in event.data.items() if k != "agent"}
    return {"seq": event.seq, "type": event.type, "offset_s": event.at - start, "data": data}


def _within(moment: float, step: dict[str, Any]) -> bool:
    start, end = step.get("start"), step.get("end")
    return start is not None and start <= moment and (end is None or moment <= end)


def _pricer(run: RunRecord) -> Any:
    """USD for one step's usage, as the agent priced the run (None when the run's cost is unknown)."""
    if run.cost_usd is None:
        return lambda usage: None
    from ..models.base import TokenUsage
    from ..models.pricing import estimate_cost

    spec = str((run.config.get("model") or {}).get("spec") or "")
    provider = spec.split(":", 1)[0] if ":" in spec else None

    def price(usage: dict[str, Any] | None) -> float | None:
        if not usage:
            return None
        try:
            return estimate_cost(run.model_id, TokenUsage.from_dict(usage), provider=provider)
        except (KeyError, TypeError, ValueError):  # a usage dict from another codeloop version
            return None

    return price


def _step_view(
    index: int, step: dict[str, Any], run: RunRecord, events: list[EventRecord], price: Any
) -> dict[str, Any] | None:
    kind = step.get("type", "")
    if kind == "system_prompt":
        return None
    usage = step.get("token_usage") or {}
    timing = step.get("timing") or {}
    start, end = timing.get("start_time"), timing.get("end_time")
    view: dict[str, Any] = {
        "index": index,
        "kind": kind,
        "step_number": step.get("step_number"),
        "start": start,
        "end": end,
        "offset_s": None if start is None else start - run.started_at,
        "duration_s": None if start is None or end is None else max(end - start, 0.0),
        "input_tokens": int(usage.get("input_tokens", 0) or 0),
        "output_tokens": int(usage.get("output_tokens", 0) or 0),
        "cost_usd": price(usage),
        "effects": [],
        "child_run_ids": [],
    }
    if kind == "task":
        view["text"] = _clip(str(step.get("task", "")), MAX_TEXT)
    elif kind == "planning":
        view["text"] = _clip(str(step.get("plan", "")), MAX_TEXT)
        if start is not None and end is not None:
            view["effects"].append(_effect("model", "model call", start, end, run.started_at))
    elif kind == "final_answer":
        view["text"] = _clip(_preview(step.get("output")), MAX_TEXT)
    elif kind == "action":
        view.update(_action_view(step, run, events))
    return view


def _action_view(step: dict[str, Any], run: RunRecord, events: list[EventRecord]) -> dict[str, Any]:
    number = step.get("step_number")
    timing = step.get("timing") or {}
    start, end = timing.get("start_time"), timing.get("end_time")
    finished = [e for e in events if e.type == "StepFinished" and e.data.get("step_number") == number]
    marks: dict[str, float] = (finished[-1].data.get("marks") or {}) if finished else {}
    effects: list[dict[str, Any]] = []
    model_end = marks.get("ModelOutput")
    model_start = marks.get("StepStarted", start)
    if model_start is not None:
        failed = model_end is None and step.get("model_output") is None
        effects.append(
            _effect(
                "model",
                run.model_id or "model call",
                model_start,
                model_end if model_end is not None else end,
                run.started_at,
                status="failed" if failed else "done",
            )
        )
    code = step.get("code_action")
    if code is not None and marks.get("CodeAction") is not None:
        effects.append(
            _effect(
                "code",
                "code execution",
                marks["CodeAction"],
                marks.get("Observation", end),
                run.started_at,
                status="failed" if step.get("error") else "done",
            )
        )
    results = {r.get("call_id"): r for r in step.get("tool_results") or []}
    for event in events:
        if event.type == "ToolCallStarted" and event.data.get("step_number") == number:
            result = results.get(event.data.get("call_id")) or {}
            effects.append(
                _effect(
                    "tool",
                    str(event.data.get("tool", "tool")),
                    event.at,
                    marks.get("Observation", end),
                    run.started_at,
                    status="failed" if result.get("is_error") else "done",
                    output=_clip(str(result.get("output", "")), 2000),
                )
            )
    retries = [
        _effect("retry", str(e.data.get("text", "retry")), e.at, e.at, run.started_at)
        for e in events
        if e.type == "ModelRetry" and start is not None and start <= e.at <= (end or math.inf)
    ]
    return {
        "model_output": _clip(step.get("model_output"), MAX_TEXT),
        "code": _clip(code, MAX_TEXT),
        "tool_calls": [
            {"name": c.get("name"), "arguments": c.get("arguments")} for c in step.get("tool_calls") or []
        ],
        "observations": _clip(step.get("observations"), MAX_TEXT),
        "error": _clip(step.get("error"), MAX_TEXT),
        "error_type": step.get("error_type"),
        "is_final_answer": bool(step.get("is_final_answer")),
        "effects": effects + retries,
    }


def _effect(
    kind: str,
    name: str,
    start: float,
    end: float | None,
    run_start: float,
    *,
    status: str = "done",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": name,
        "status": status,
        "offset_s": start - run_start,
        "duration_s": None if end is None else max(end - start, 0.0),
        **extra,
    }


def _child_effect(child: RunRecord, run_start: float) -> dict[str, Any]:
    return _effect(
        "agent",
        child.agent,
        child.started_at,
        child.ended_at,
        run_start,
        status=child.state,
        run_id=child.run_id,
        task=_clip(child.task, 500),
    )


def _preview(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value

    return json.dumps(value, ensure_ascii=False, default=repr)


def _clip(text: Any, limit: int) -> Any:
    if not isinstance(text, str) or len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters; `codeloop runs export` has them all)"


# --- two runs ---------------------------------------------------------------------------------------------------


def compare_runs(store: Store, first: str, second: str) -> dict[str, Any]:
    """Two runs side by side: their totals and differences, and their action steps aligned by step number.

    Each row holds both runs' step (or None where one run has no such step) and whether the code (or tool calls),
    the observation and the error are the same."""
    runs = [store.get_run(first), store.get_run(second)]
    sides = []
    for run in runs:
        price = _pricer(run)
        events = store.events(run.run_id)
        steps = [_step_view(i, s, run, events, price) for i, s in enumerate(store.steps(run.run_id))]
        actions = {s["step_number"]: s for s in steps if s is not None and s["kind"] == "action"}
        answer = next((s for s in steps if s is not None and s["kind"] == "final_answer"), None)
        sides.append((run, actions, answer))
    numbers = sorted({n for _, actions, _ in sides for n in actions if n is not None})
    rows = []
    for number in numbers:
        a, b = (_compact(side[1].get(number)) for side in sides)
        same: dict[str, bool | None] = {}
        for key in ("action", "observations", "error"):
            same[key] = None if a is None or b is None else a[key] == b[key]
        rows.append({"step_number": number, "a": a, "b": b, "same": same})
    (run_a, _, answer_a), (run_b, _, answer_b) = sides
    row_a, row_b = run_row(run_a), run_row(run_b)
    return {
        "a": {**row_a, "answer": None if answer_a is None else answer_a.get("text")},
        "b": {**row_b, "answer": None if answer_b is None else answer_b.get("text")},
        "diff": {
            "state": run_a.state == run_b.state,
            "output": run_a.output == run_b.output,
            "model_id": run_a.model_id == run_b.model_id,
            "step_count": run_b.step_count - run_a.step_count,
            "input_tokens": run_b.input_tokens - run_a.input_tokens,
            "output_tokens": run_b.output_tokens - run_a.output_tokens,
            "cost_usd": _difference(run_a.cost_usd, run_b.cost_usd),
            "duration_s": _difference(row_a["duration_s"], row_b["duration_s"]),
        },
        "rows": rows,
    }


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _compact(step: dict[str, Any] | None) -> dict[str, Any] | None:
    if step is None:
        return None
    calls = "\n".join(f"{c['name']}({_preview(c['arguments'])})" for c in step["tool_calls"])
    return {
        "action": step["code"] if step["code"] is not None else calls,
        "observations": step["observations"],
        "error": step["error"],
        "duration_s": step["duration_s"],
        "input_tokens": step["input_tokens"],
        "output_tokens": step["output_tokens"],
        "cost_usd": step["cost_usd"],
        "is_final_answer": step["is_final_answer"],
    }
