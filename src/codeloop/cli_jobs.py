"""`codeloop eval` and `codeloop batch`: many runs with a progress bar, a JSONL record each, resume-by-rerun."""

from __future__ import annotations

import argparse
import functools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .jobs import ResultSink

__all__ = ["CommandContext", "add_job_commands", "agent_options", "result_sinks"]


@dataclass(frozen=True)
class CommandContext:
    """What `eval` and `batch` share with `codeloop run`, handed over by `codeloop.cli` (which imports this module;
    importing it back would make a cycle)."""

    usage_error: type[Exception]
    """Raised for a problem the user must fix; `codeloop.cli.main` turns it into exit code 2."""
    resolve_model_spec: Callable[[str | None], str]
    build_model: Callable[[argparse.Namespace], Any]
    build_tools: Callable[[str | None], list[Any]]
    positive_int: Callable[[str], int]
    add_model_arguments: Callable[[argparse.ArgumentParser], None]


EVAL_EXIT_CODES = {
    0: "every run is recorded (wrong answers included: they are results)",
    1: "with --ray, some runs got no result because their node kept dying (named; run again to retry them)",
    2: "usage error: bad arguments, a suite that does not load, an output file made with other settings",
    130: "interrupted with Ctrl-C: the finished runs are recorded; the same command again continues",
}
BATCH_EXIT_CODES = {
    0: "every task's run ended with a final answer",
    1: "some runs did not (see their state and error in the output file), or, with --ray, got no result because "
    "their node kept dying (named; run again to retry them)",
    2: "usage error: bad arguments, a malformed tasks file (named by line), an output made with other settings",
    130: "interrupted with Ctrl-C: the finished runs are recorded; the same command again continues",
}


_RAY_DEFAULT = "default"
"""`--ray` given without an address."""


def _codes_help(codes: dict[int, str]) -> str:
    return "exit codes:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in codes.items())


def result_sinks(args: argparse.Namespace) -> list[ResultSink]:
    """Where records go besides the JSONL file: the run store of `--store` (unless 'none').

    Each record (the score: success, error kind, ...) is kept with the run it scores, as a "JobRecord" event,
    while `agent_options` below hands each agent the store so its steps are recorded too; each record's `run_id`
    links the JSONL line to the stored run.
    """
    from .store.cli import store_from_argument
    from .store.jobs import StoreResultSink

    spec = store_from_argument(getattr(args, "store", "none"))
    return [] if spec is None else [StoreResultSink(spec)]


def agent_options(args: argparse.Namespace) -> dict[str, Any]:
    """Extra keyword arguments for every agent `eval` and `batch` build: the run store (`store=`)."""
    from .store.cli import store_from_argument

    return {"store": store_from_argument(getattr(args, "store", "none"))}


def _store_label(args: argparse.Namespace, kind: str, output: Path) -> Any:
    """Label the runs of this eval or batch in the run store (`--label`, default `KIND:OUTPUT-STEM`): stable
    across reruns of the same command, so a resumed eval's runs share it."""
    from .store.cli import store_from_argument
    from .store.recorder import run_label

    label = args.label or f"{kind}:{output.stem}"
    if store_from_argument(args.store) is not None:
        print(f"runs recorded with label {label} (codeloop runs list --label {label})", file=sys.stderr)
    return run_label(label)


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "run"


def _interrupted(done: int, total: int, output: Path) -> int:
    print(
        f"\nInterrupted: {done} of {total} runs are recorded in {output}; run the same command again to continue.",
        file=sys.stderr,
    )
    return 130


def _ray_address(args: argparse.Namespace, context: CommandContext) -> str | bool | None:
    """`--ray`'s value for the Python API (True: Ray's default cluster), refused now when Ray is missing."""
    if args.ray is None:
        return None
    from .jobs_ray import ray_available

    missing = ray_available()
    if missing:
        raise context.usage_error(f"--ray: {missing}")
    return True if args.ray == _RAY_DEFAULT else args.ray


def _lost(error: Exception) -> int:
    print(f"codeloop: {error}", file=sys.stderr)
    return 1


def _recorded(output: Path) -> int:
    from .jobs import ResultsFile

    try:
        return len(ResultsFile(output).records)
    except ValueError:
        return 0


def _cmd_eval(args: argparse.Namespace, context: CommandContext) -> int:
    from .evals.runner import run_eval, summarize, write_plot
    from .evals.suites import SuiteError, load_suite, select_tasks
    from .jobs import ResultsFileError, RunsLostError

    ray = _ray_address(args, context)
    try:
        tasks = select_tasks(load_suite(args.suite), args.tasks.split(",") if args.tasks else None)
    except SuiteError as exc:
        raise context.usage_error(str(exc)) from None
    agents = ["code", "tool-calling"] if args.agent == "both" else [args.agent]
    spec = context.resolve_model_spec(args.model)
    suite_label = "builtin" if args.suite == "builtin" else _label(Path(args.suite).stem)
    output = args.output or Path(f"eval-{suite_label}-{_label(spec)}.jsonl")
    config = {"model": spec, "executor": args.executor, "max_steps": args.max_steps}
    model = context.build_model(args)  # after the suite: a broken suite costs no client set-up
    total = len(tasks) * len(agents) * args.repeat
    print(
        f"{len(tasks)} tasks x {len(agents)} agent(s) x {args.repeat} repeat(s) on {spec} -> {output}",
        file=sys.stderr,
    )
    try:
        with _store_label(args, "eval", output):
            records = run_eval(
                tasks, model, agents=agents, repeat=args.repeat, concurrency=args.concurrency, output=output,
                executor=args.executor, max_steps=args.max_steps, config=config, sinks=result_sinks(args),
                agent_options=agent_options(args), retry_errors=args.retry_errors,
                progress=not args.no_progress, ray=ray,
            )  # fmt: skip
    except ResultsFileError as exc:
        raise context.usage_error(str(exc)) from None
    except KeyboardInterrupt:
        return _interrupted(_recorded(output), total, output)
    except RunsLostError as exc:
        return _lost(exc)
    rows = summarize(records)
    _print_table(rows, f"{len(tasks)} tasks, {spec}")
    if not args.no_plot:
        plot = args.plot or output.with_suffix(".png")
        why_not = write_plot(rows, plot, title=f"{suite_label} suite, {spec}")
        print(f"codeloop: {why_not}" if why_not else f"plot: {plot}", file=sys.stderr)
    print(f"results: {output}", file=sys.stderr)
    return 0


def _cmd_batch(args: argparse.Namespace, context: CommandContext) -> int:
    from .batch import TasksFileError, read_tasks_file, run_batch
    from .evals.runner import summarize
    from .jobs import ResultsFileError, RunsLostError

    ray = _ray_address(args, context)
    try:
        tasks = read_tasks_file(args.tasks_file)  # every line checked before anything runs
    except TasksFileError as exc:
        raise context.usage_error(str(exc)) from None
    spec = context.resolve_model_spec(args.model)
    output = args.output or args.tasks_file.with_name(f"{args.tasks_file.stem}.results.jsonl")
    tools = context.build_tools(args.tools)
    model = context.build_model(args)
    config = {
        "model": spec, "agent": args.agent, "executor": args.executor, "max_steps": args.max_steps,
        "tools": args.tools, "imports": sorted(args.imports or ()),
    }  # fmt: skip
    executor: Any = args.executor
    if ray and executor == "sandbox":
        from .jobs_ray import NodeSandboxPool

        executor = NodeSandboxPool(size=args.concurrency)  # one per node, built there

    def make_agent() -> Any:
        from .code_agent import CodeAgent
        from .tool_calling_agent import ToolCallingAgent

        common: dict[str, Any] = {"max_steps": args.max_steps, "verbosity_level": 0, **agent_options(args)}
        if args.agent == "code":
            return CodeAgent(
                tools,
                model,
                executor=executor,
                additional_authorized_imports=args.imports or (),
                **common,
            )
        return ToolCallingAgent(tools, model, **common)

    print(f"{len(tasks)} tasks on {spec} -> {output}", file=sys.stderr)
    try:
        with _store_label(args, "batch", output):
            records = run_batch(
                make_agent, tasks, concurrency=args.concurrency, output=output, config=config,
                sinks=result_sinks(args), progress=not args.no_progress, retry_errors=args.retry_errors, ray=ray,
            )  # fmt: skip
    except ResultsFileError as exc:
        raise context.usage_error(str(exc)) from None
    except KeyboardInterrupt:
        return _interrupted(_recorded(output), len(tasks), output)
    except RunsLostError as exc:
        return _lost(exc)
    _print_table(summarize(records, by=None), f"{len(tasks)} tasks, {spec}", first="batch")
    failed = [record["id"] for record in records if not record["success"]]
    if failed:
        shown = ", ".join(failed[:10]) + (", ..." if len(failed) > 10 else "")
        print(f"codeloop: {len(failed)} run(s) ended without a final answer: {shown}", file=sys.stderr)
    print(f"results: {output}", file=sys.stderr)
    return 1 if failed else 0


def _print_table(rows: list[Any], title: str, first: str = "agent") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in (first, "solved", "success", "mean steps", "mean in tokens", "mean out tokens", "cost $",
                   "mean s", "errors"):  # fmt: skip
        table.add_column(column, justify="left" if column in (first, "errors") else "right")
    for row in rows:
        n = max(row.runs, 1)
        cost = "unknown" if row.cost_usd is None else f"{row.cost_usd:.4f}"
        errors = ", ".join(f"{kind} {count}" for kind, count in row.errors.most_common()) or "-"
        table.add_row(
            first if row.agent == "all" else row.agent, f"{row.solved}/{row.runs}", f"{100 * row.success_rate:.0f}%",
            f"{row.steps / n:.1f}", f"{row.input_tokens / n:,.0f}", f"{row.output_tokens / n:,.0f}", cost,
            f"{row.seconds / n:.2f}", errors,
        )  # fmt: skip
    Console(width=120).print(table)


def _add_agent_arguments(parser: argparse.ArgumentParser, max_steps: int, context: CommandContext) -> None:
    context.add_model_arguments(parser)
    parser.add_argument(
        "--executor",
        default="sandbox",
        choices=["sandbox", "local", "docker", "e2b", "modal"],
        help="where a CodeAgent's code runs (default: sandbox)",
    )
    parser.add_argument(
        "--max-steps",
        type=context.positive_int,
        default=max_steps,
        metavar="N",
        help=f"steps per run (default: {max_steps})",
    )
    parser.add_argument(
        "--concurrency", type=context.positive_int, default=4, metavar="N", help="runs at once (default: 4; 1 for a "
        "local model server that answers one request at a time)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    from .store.cli import add_store_argument

    add_store_argument(parser)
    parser.add_argument(
        "--label",
        help="label of these runs in the run store (default: eval:OUTPUT or batch:OUTPUT, the results file's "
        "name without .jsonl); `codeloop runs list --label LABEL` lists them",
    )
    parser.add_argument(
        "--ray", nargs="?", const=_RAY_DEFAULT, metavar="ADDRESS", help="run on a Ray cluster (e.g. "
        "10.0.0.5:6379 or ray://head:10001; alone: RAY_ADDRESS, the cluster started on this machine, or a new "
        "local one), --concurrency runs at once on each node; results are recorded here (needs codeloop[ray])",
    )  # fmt: skip
    parser.add_argument(
        "--retry-errors",
        action="store_true",
        help="run again the runs recorded as failed by an error (an unreachable model, an agent that could not "
        "be built); wrong answers and max-steps runs stay recorded",
    )


def add_job_commands(sub: Any, context: CommandContext) -> None:
    """Add the `eval` and `batch` subcommands to the `codeloop` parser's subparsers."""
    ev = sub.add_parser(
        "eval",
        help="run a task suite with CodeAgent and/or ToolCallingAgent and score the answers",
        description="Run every task of a suite with the chosen agents, score each answer with the task's "
        "checker, record each run as a JSON line, and print a summary table. Ctrl-C, then the same command "
        "again, continues where it stopped.",
        epilog=_codes_help(EVAL_EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("suite", help="'builtin', a module path (my_pkg.suite), a .py file, or a folder of them")
    _add_agent_arguments(ev, max_steps=8, context=context)
    ev.add_argument(
        "--agent", choices=["code", "tool-calling", "both"], default="both", help="(default: both)"
    )
    ev.add_argument(
        "--repeat", type=context.positive_int, default=1, metavar="K", help="runs per task and agent"
    )
    ev.add_argument("--tasks", help="comma-separated task names (default: the whole suite)")
    ev.add_argument(
        "--output", type=Path, help="results JSONL (default: eval-SUITE-MODEL.jsonl); rerunning resumes it"
    )
    ev.add_argument(
        "--plot", type=Path, help="PNG of success against tokens (default: the output's name, .png)"
    )
    ev.add_argument("--no-plot", action="store_true", help="write no plot")
    ev.set_defaults(handler=functools.partial(_cmd_eval, context=context))

    batch = sub.add_parser(
        "batch",
        help="run an agent on every task of a JSONL file",
        description='Run an agent on every task of a JSONL file (one {"id": ..., "task": ...} per line), '
        "several at once, recording each run as a JSON line. Ctrl-C, then the same command again, continues "
        "where it stopped.",
        epilog=_codes_help(BATCH_EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument("tasks_file", type=Path, help='JSONL: one {"id": ..., "task": ...} per line')
    _add_agent_arguments(batch, max_steps=20, context=context)
    batch.add_argument("--agent", choices=["code", "tool-calling"], default="code")
    batch.add_argument("--tools", help="comma-separated built-in tools, e.g. web_search,visit_webpage")
    batch.add_argument("--imports", nargs="*", help="extra modules the code may import, e.g. numpy pandas")
    batch.add_argument(
        "--output", type=Path, help="results JSONL (default: TASKS.results.jsonl beside the tasks file)"
    )
    batch.set_defaults(handler=functools.partial(_cmd_batch, context=context))
