"""`codeloop runs list | show | export | delete`: the run store from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .base import RunRecord, Store, StoreError

__all__ = ["EXPORT_FORMAT", "add_store_argument", "add_runs_parser", "store_from_argument", "export_run"]

EXPORT_FORMAT = "codeloop-run/1"
"""The `format` field of `codeloop runs export` output (see the README's "Run store" section)."""

_STATES = (
    "running", "abandoned", "success", "max_steps", "interrupted", "error", "budget", "awaiting_approval",
)  # fmt: skip


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    """`--store SPEC`: where runs are recorded and read (default: $CODELOOP_HOME/runs.db; 'none': off)."""
    parser.add_argument(
        "--store",
        default="default",
        metavar="SPEC",
        help="run store: a path, sqlite:///PATH, postgresql://..., or 'none' "
        "(default: $CODELOOP_HOME/runs.db, CODELOOP_HOME defaulting to the user data folder)",
    )


def store_from_argument(spec: str) -> Any:
    """The `store=` value for a `--store` argument: 'none' turns recording off."""
    return None if spec.strip().lower() in ("none", "off") else spec


def add_runs_parser(sub: Any) -> None:
    """Add `runs` and its subcommands to the top-level subparsers."""
    runs = sub.add_parser("runs", help="list, show, export and delete recorded runs")
    add_store_argument(runs)
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)

    listing = runs_sub.add_parser("list", help="recorded runs, newest first")
    listing.add_argument("--session", help="only this session's runs")
    listing.add_argument(
        "--label", help="only runs with this label (e.g. eval:ID or batch:ID, printed by eval and batch)"
    )
    listing.add_argument("--state", choices=_STATES, help="only runs in this state")
    listing.add_argument("--limit", type=int, default=20, metavar="N", help="at most N runs (default: 20)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_cmd_list)

    show = runs_sub.add_parser("show", help="replay a run on the console, read from the store")
    show.add_argument("run_id", help="the run id, or a unique prefix of it")
    show.add_argument("--detailed", action="store_true", help="also the model's full replies")
    show.set_defaults(handler=_cmd_show)

    export = runs_sub.add_parser("export", help=f"a run as JSON (format {EXPORT_FORMAT})")
    export.add_argument("run_id", help="the run id, or a unique prefix of it")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    export.set_defaults(handler=_cmd_export)

    delete = runs_sub.add_parser(
        "delete", help="delete runs with their steps, events, journal and child runs"
    )
    delete.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="run ids (or unique prefixes)")
    delete.add_argument("--session", help="delete every run of this session")
    delete.set_defaults(handler=_cmd_delete)


def _open(args: argparse.Namespace) -> Store:
    from .opening import open_store

    spec = store_from_argument(args.store)
    if spec is None:
        raise StoreError("--store none: the runs commands need a store to read")
    store = open_store(spec)
    assert store is not None
    return store


def _fail(exc: Exception) -> int:
    print(f"codeloop: {exc}", file=sys.stderr)
    return 2


def _cmd_list(args: argparse.Namespace) -> int:
    try:
        store = _open(args)
        runs = store.list_runs(
            session=args.session, state=args.state, limit=max(args.limit, 0), label=args.label
        )
    except StoreError as exc:
        return _fail(exc)
    if args.json:
        for run in runs:
            print(json.dumps(_row(run)))
        return 0
    if not runs:
        print(f"No runs recorded in {store.url}.", file=sys.stderr)
        return 0
    print(f"{'RUN ID':<32}  {'STARTED':<19}  {'STATE':<11}  {'STEPS':>5}  {'TOKENS':>8}  TASK")
    for run in runs:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started_at))
        task = " ".join(run.task.split())
        task = task if len(task) <= 50 else task[:49] + "…"
        tokens = run.input_tokens + run.output_tokens
        print(f"{run.run_id:<32}  {started:<19}  {run.state:<11}  {run.step_count:>5}  {tokens:>8}  {task}")
    return 0


def _row(run: RunRecord) -> dict[str, Any]:
    row = run.to_dict()
    del row["config"]  # `runs export` has it; a listing stays one short line per run
    return row


def _cmd_show(args: argparse.Namespace) -> int:
    from ..console import ConsoleRenderer
    from ..memory import MemoryStep

    try:
        store = _open(args)
        run = store.get_run(args.run_id)
        steps = [MemoryStep.from_dict(d) for d in store.steps(run.run_id)]
        children = store.children(run.run_id)
    except StoreError as exc:
        return _fail(exc)
    ConsoleRenderer(level=2 if args.detailed else 1).replay(steps, run.agent)
    for child in children:
        print(f"managed agent {child.agent}: run {child.run_id} ({child.state})")
    cost = f", ${run.cost_usd:.4f}" if run.cost_usd is not None else ""
    error = f": {run.error}" if run.error else ""
    print(
        f"run {run.run_id} | {run.state}{error} | {run.step_count} steps | "
        f"tokens in {run.input_tokens:,} / out {run.output_tokens:,}{cost}"
    )
    return 0


def export_run(store: Store, run_id: str) -> dict[str, Any]:
    """A run as a JSON-ready dict in the `codeloop-run/1` format, its managed agents' runs nested."""
    from dataclasses import asdict

    run = store.get_run(run_id)
    return {
        "format": EXPORT_FORMAT,
        "run": run.to_dict(),
        "steps": store.steps(run.run_id),
        "events": [
            {"seq": e.seq, "type": e.type, "at": e.at, "data": e.data} for e in store.events(run.run_id)
        ],
        "journal": [asdict(entry) for entry in store.journal(run.run_id).entries()],
        "children": [export_run(store, child.run_id) for child in store.children(run.run_id)],
    }


def _cmd_export(args: argparse.Namespace) -> int:
    try:
        data = export_run(_open(args), args.run_id)
    except StoreError as exc:
        return _fail(exc)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    if not args.run_ids and not args.session:
        return _fail(ValueError("say what to delete: RUN_ID ... or --session NAME"))
    try:
        store = _open(args)
        ids = [store.get_run(r).run_id for r in args.run_ids]  # all found before any is deleted
        if args.session:
            ids += [r.run_id for r in store.list_runs(session=args.session) if r.parent_run_id is None]
        deleted = sum(store.delete_run(run_id) for run_id in dict.fromkeys(ids))
    except StoreError as exc:
        return _fail(exc)
    print(f"Deleted {deleted} run(s) from {store.url}.", file=sys.stderr)
    return 0
