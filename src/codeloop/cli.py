"""`codeloop run | eval | batch | demo | mcp serve | ui`: the command line. Exit codes of `run` are in `EXIT_CODES`."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["EXIT_CODES", "add_model_arguments", "main", "read_task", "resolve_model_spec", "summary_line"]

EXIT_CODES = {
    0: "the agent gave its final answer",
    1: "the run failed: the model stayed unreachable or answered with an error, or codeloop itself failed",
    2: "usage error: bad arguments, an empty or unreadable task, no model configured, a missing API key",
    3: "the run reached --max-steps without a final answer (the answer printed was forced from the model)",
    4: "the run paused: tool calls await approval (they are printed; see --require-approval)",
    130: "interrupted with Ctrl-C (the steps so far are printed)",
}
"""Exit codes of `codeloop run`, documented in `--help` and the README."""

_EXIT_CODES_HELP = "exit codes:\n" + "\n".join(
    f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items()
)

NO_MODEL_HELP = """No model is configured. Do one of:
  - pass --model, e.g. --model openai:gpt-4o (or --model ollama:qwen2.5-coder with a local Ollama)
  - set CODELOOP_MODEL=provider:model
  - set OPENAI_API_KEY, ANTHROPIC_API_KEY or HF_TOKEN
  - run Ollama on 127.0.0.1:11434
Try `codeloop demo` to see a run with no model at all."""

DEFAULT_MODELS = (
    ("OPENAI_API_KEY", "openai:gpt-4o"),
    ("ANTHROPIC_API_KEY", "anthropic:claude-sonnet-4-6"),
    ("HF_TOKEN", "hf:Qwen/Qwen2.5-Coder-32B-Instruct"),
)


class UsageError(Exception):
    """A configuration problem the user must fix; exit code 2."""


def read_task(argument: str, stdin: TextIO | None = None) -> str:
    """The task a `run` argument names: the text itself, `-` for stdin, or `@FILE` for a file's contents.

    A task too long for the command line (the OS limits arguments to a few hundred KB) goes through stdin or
    a file. Raises `UsageError` for an unreadable file or an empty task.
    """
    if argument == "-":
        source = stdin or sys.stdin
        buffer = getattr(source, "buffer", None)
        try:
            text = buffer.read().decode("utf-8") if buffer is not None else source.read()
        except UnicodeDecodeError as exc:
            raise UsageError(f"the task on stdin is not UTF-8 text: {exc}") from None
        where = "stdin"
    elif argument.startswith("@"):
        path = Path(argument[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UsageError(
                f"cannot read the task file '{path}': {reason}. (A task that itself starts with '@' can be "
                "given on stdin: echo '@...' | codeloop run -)"
            ) from None
        where = f"the file '{path}'"
    else:
        text, where = argument, "the argument"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # undecodable bytes in argv arrive as lone surrogates
        raise UsageError(f"the task from {where} is not UTF-8 text: {exc}") from None
    if not text.strip():
        raise UsageError(
            f'the task from {where} is empty: say what the agent should do, e.g. codeloop run "What is 2**10?" '
            "(or '-' to read the task from stdin, @FILE to read it from a file)"
        )
    return text


def resolve_model_spec(explicit: str | None, env: dict[str, str] | None = None) -> str:
    """The model spec: --model, else $CODELOOP_MODEL, else one detected from API keys or a local Ollama."""
    env = dict(os.environ) if env is None else env
    if explicit:
        return explicit
    if env.get("CODELOOP_MODEL"):
        return env["CODELOOP_MODEL"]
    for variable, spec in DEFAULT_MODELS:
        if env.get(variable):
            return spec
    ollama = _local_ollama_model()
    if ollama:
        return f"ollama:{ollama}"
    raise UsageError(NO_MODEL_HELP)


def _local_ollama_model(host: str = "127.0.0.1", port: int = 11434) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            pass
    except OSError:
        return None
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{host}:{port}/api/tags", timeout=1) as response:
            models = json.load(response).get("models") or []
    except (OSError, ValueError):
        return None
    return models[0].get("name") if models else None


def _build_model(args: argparse.Namespace) -> Any:
    from .errors import MissingAPIKeyError
    from .models import model as model_from_spec

    spec = resolve_model_spec(args.model)
    kwargs: dict[str, Any] = {}
    if args.api_base:
        kwargs["api_base"] = args.api_base
    if args.api_key:
        kwargs["api_key"] = args.api_key
    network = {"timeout": args.timeout, "max_retries": args.max_retries}
    kwargs.update({k: v for k, v in network.items() if v is not None})
    try:
        return model_from_spec(spec, **kwargs)
    except MissingAPIKeyError as exc:
        raise UsageError(
            f"{exc.provider}: no API key. Pass --api-key KEY or set the {exc.env_var} environment variable."
        ) from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    except TypeError as exc:
        # Only the network adapters take these options; a local model (transformers) refuses them.
        given = [f"--{k.replace('_', '-')}" for k, v in network.items() if v is not None]
        if not given:
            raise
        raise UsageError(
            f"{' and '.join(given)} apply to API models only; {spec!r} runs locally ({exc})"
        ) from exc


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _build_tools(names: str | None) -> list[Any]:
    if not names:
        return []
    from .tools import load_builtin_tools

    try:
        return load_builtin_tools(names)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _cmd_run(args: argparse.Namespace) -> int:
    from . import events as ev

    task = read_task(args.task)  # before the model: a bad task costs nothing
    model = _build_model(args)
    tools = _build_tools(args.tools)
    listeners: list[Callable[[ev.Event], None]] = []
    waiting = WaitingNotice(_model_label(model), getattr(model, "timeout", None))
    listeners.append(waiting)
    if not args.json:
        listeners.append(_console_without_summary())
    from .store import StoreError
    from .store.cli import store_from_argument

    common: dict[str, Any] = {
        "max_steps": args.max_steps,
        "verbosity_level": 0,
        "listeners": listeners,
        "store": store_from_argument(args.store),
    }
    if args.session is not None and common["store"] is None:
        raise UsageError("--session needs a run store to keep the conversation in; drop --store none")
    try:
        agent = _build_agent(args, model, tools, common)
    except StoreError as exc:  # a corrupt, foreign or newer store: refused before any model call
        raise UsageError(str(exc)) from exc
    waiting.start()
    from .compaction import ContextWindowTooSmall

    try:
        result = agent.run(task, return_full_result=True, session=args.session)
    except KeyboardInterrupt:
        result = agent._last_result
    except ContextWindowTooSmall as exc:  # found before any model call: bad input, not a crash
        raise UsageError(str(exc)) from exc
    finally:
        waiting.stop()
        close = getattr(agent, "close", None)
        if close is not None:
            close()
    if result is None:
        print("Interrupted before the first step.", file=sys.stderr)
        return 130
    seconds = result.timing.duration or 0.0
    if args.json:
        print(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "output": result.to_dict()["output"],
                    "state": result.state,
                    "steps": result.to_dict()["steps"],
                    "token_usage": result.token_usage.to_dict(),
                    "cost_usd": result.cost_usd,
                    "duration_s": round(seconds, 3),
                    "error": result.error,
                    "pending": [p.to_dict() for p in result.pending],
                }
            )
        )
    elif result.state == "awaiting_approval":
        print(pending_notice(result))
    elif result.state == "interrupted":
        print("\nInterrupted. The steps so far:", file=sys.stderr)
        agent.replay()
    else:
        if result.state == "max_steps":
            print(f"codeloop: {result.error}; the answer below was forced from the model.", file=sys.stderr)
        print(result.output if result.state in ("success", "max_steps") else f"Run ended: {result.error}")
        print(summary_line(result, seconds))
    return exit_code(result.state)


def _build_agent(args: argparse.Namespace, model: Any, tools: list[Any], common: dict[str, Any]) -> Any:
    """The agent `run` (and `resume`) asks for; its settings go into the run's journal, so that `codeloop
    resume` can rebuild the same agent (the API key never does: it comes from --api-key or the environment)."""
    from .code_agent import CodeAgent
    from .durable import journal_factory
    from .tool_calling_agent import ToolCallingAgent

    approval = _approval_policy(getattr(args, "require_approval", None), tools)
    common = {**common, "journal": journal_factory(args.journal), "approval": approval}
    agent: Any
    if args.agent == "code":
        agent = CodeAgent(
            tools, model, executor=args.executor, additional_authorized_imports=args.imports or (), **common
        )
    else:
        agent = ToolCallingAgent(tools, model, **common)
    agent._durable.metadata["cli"] = {key: getattr(args, key) for key in _RESUMABLE_SETTINGS}
    return agent


_RESUMABLE_SETTINGS = (
    "model", "api_base", "tools", "imports", "executor", "agent", "timeout", "max_retries", "require_approval",
)  # fmt: skip


def _cmd_resume(args: argparse.Namespace) -> int:
    """`codeloop resume RUN_ID` and `codeloop approve RUN_ID [CALL_ID ...] [--deny REASON]`."""
    from .durable import ResumeError, pending_approvals

    journal, where = _resumable_journal(args)
    entries = journal.entries()
    if not entries or entries[0].kind != "run":
        raise UsageError(
            f"no run {args.run_id!r} is journaled in {where}; give the store it was recorded in with "
            "--store SPEC, or --journal DIR for a run started with --journal"
        )
    approvals: dict[str, Any] | None = None
    if args.command == "approve":
        pending = {str(p["call_id"]): p for p in pending_approvals(journal)}
        if not pending:
            raise UsageError(f"run {args.run_id} has no calls awaiting approval")
        unknown = [c for c in args.call_ids if c not in pending]
        if unknown:
            listing = ", ".join(f"{c} ({p.get('tool')})" for c, p in pending.items())
            raise UsageError(f"unknown call id {', '.join(unknown)}; the pending calls are: {listing}")
        approvals = {c: args.deny if args.deny else True for c in args.call_ids or pending}
    saved = (entries[0].result.get("meta") or {}).get("cli") or {}
    for key in _RESUMABLE_SETTINGS:
        setattr(args, key, saved.get(key) if getattr(args, key, None) is None else getattr(args, key))
    args.agent, args.executor = args.agent or "code", args.executor or "sandbox"
    model = _build_model(args)
    listeners: list[Callable[[Any], None]] = [] if args.json else [_console_without_summary()]
    from .store import StoreError
    from .store.cli import store_from_argument

    common = {"verbosity_level": 0, "listeners": listeners, "store": store_from_argument(args.store)}
    try:  # the resumed run is recorded where it was (and its journal read from there when no --journal)
        agent = _build_agent(args, model, _build_tools(args.tools), common)
    except StoreError as exc:
        raise UsageError(str(exc)) from exc
    try:
        result = agent.resume(args.run_id, approvals=approvals, return_full_result=True)
    except ResumeError as exc:
        print(f"codeloop: {exc}", file=sys.stderr)
        return 1
    finally:
        agent.close()
    if args.json:
        output = result.to_dict()["output"]
        print(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "state": result.state,
                    "output": output,
                    "error": result.error,
                    "pending": [p.to_dict() for p in result.pending],
                }
            )
        )
    elif result.state == "awaiting_approval":
        print(pending_notice(result))
    else:
        print(result.output if result.state in ("success", "max_steps") else f"Run ended: {result.error}")
        print(summary_line(result, result.timing.duration or 0.0))
    return exit_code(result.state)


def _resumable_journal(args: argparse.Namespace) -> tuple[Any, str]:
    """The journal `resume`/`approve` continue from, and where it is (for messages).

    `--journal DIR` when given (a run started with it), else the run store of `--store` (the default store when
    neither is given), where `codeloop run` journals by default; a unique prefix of the run id is accepted there.
    """
    from .durable import journal_factory
    from .store import RunNotFound, StoreError, open_store
    from .store.cli import store_from_argument

    if args.journal is not None:
        factory = journal_factory(args.journal)
        assert factory is not None
        return factory(args.run_id), args.journal
    spec = store_from_argument(args.store)
    if spec is None:
        raise UsageError(
            f"--store {args.store} leaves nowhere to read run {args.run_id}'s journal from: give the store it "
            "was recorded in (--store PATH | sqlite:///... | postgresql://...) or --journal DIR"
        )
    try:
        store = open_store(spec)
        assert store is not None
        args.run_id = store.get_run(args.run_id).run_id
    except RunNotFound as exc:
        raise UsageError(
            f"{exc}; give the store it was recorded in with --store SPEC, or --journal DIR for a run started "
            "with --journal"
        ) from exc
    except StoreError as exc:
        raise UsageError(str(exc)) from exc
    return store.journal(args.run_id), store.url


def _console_without_summary() -> Callable[[Any], None]:
    from . import events as ev
    from .console import ConsoleRenderer

    renderer = ConsoleRenderer(level=1)

    def show(event: ev.Event) -> None:
        # The CLI prints the run's one summary line itself, and retries on stderr with its other notices
        # (from the `codeloop.models` log), so the renderer's own are left out.
        if not isinstance(event, ev.RunFinished | ev.ModelRetry):
            renderer(event)

    return show


def exit_code(state: str) -> int:
    """The process exit code for a run that ended in `state` (see `EXIT_CODES`)."""
    codes = {"success": 0, "max_steps": 3, "budget": 3, "awaiting_approval": 4, "interrupted": 130}
    return codes.get(state, 1)


def pending_notice(result: Any) -> str:
    """What `codeloop run` prints for a run paused for approval: its id and each pending call."""
    lines = [f"Run {result.run_id} paused: {len(result.pending)} tool call(s) await approval:"]
    lines += [f"  {pending}" for pending in result.pending]
    lines.append(f"Decide with: codeloop approve {result.run_id} [CALL_ID ...] [--deny REASON]")
    return "\n".join(lines)


def _approval_policy(spec: str | None, tools: list[Any]) -> Callable[..., Any] | None:
    """A policy asking a person about every call of the tools named in `--require-approval` ("*": all)."""
    if not spec:
        return None
    from .approval import ALLOW, ASK

    names = {n.strip() for n in spec.split(",") if n.strip()}
    known = {t.name for t in tools}
    unknown = sorted(names - known - {"*"})
    if unknown:
        raise UsageError(
            f"--require-approval names {', '.join(unknown)}, which this run does not have; its tools are: "
            f"{', '.join(sorted(known)) or '(none: add some with --tools)'}"
        )

    def require_approval(tool: Any, arguments: dict[str, Any], context: Any) -> Any:
        return ASK if "*" in names or getattr(tool, "name", None) in names else ALLOW

    return require_approval


def _model_label(model: Any) -> str:
    provider = getattr(model, "provider", None)
    model_id = getattr(model, "model_id", None) or type(model).__name__
    return f"{provider}:{model_id}" if provider else str(model_id)


class WaitingNotice:
    """A listener that says so on stderr when the model has been silent a while, so a hang is never mute.

    A model call is pending from the start of a run or step until the model's reply arrives; after
    `first_after` seconds without any event it prints one line, then one every `every` seconds.
    """

    _MODEL_PENDING = ("RunStarted", "StepStarted", "StepFinished", "PlanCreated", "ModelRetry")

    def __init__(
        self,
        model_label: str,
        request_timeout: float | None,
        *,
        first_after: float = 5.0,
        every: float = 15.0,
        out: TextIO | None = None,
    ) -> None:
        self.model_label = model_label
        self.request_timeout = request_timeout
        self.first_after = first_after
        self.every = every
        self.out = out
        self._lock = threading.Lock()
        self._pending_since: float | None = None
        self._next_notice = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, event: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if type(event).__name__ in self._MODEL_PENDING:
                self._pending_since, self._next_notice = now, now + self.first_after
            else:
                self._pending_since = None

    def start(self) -> None:
        """Start watching (a daemon thread)."""
        self._thread = threading.Thread(target=self._watch, name="codeloop-waiting-notice", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            now = time.monotonic()
            with self._lock:
                if self._pending_since is None or now < self._next_notice:
                    continue
                waited = now - self._pending_since
                self._next_notice = now + self.every
            limit = (
                f"each request gives up after {self.request_timeout:g} s (--timeout)"
                if self.request_timeout
                else "no request timeout is set (--timeout)"
            )
            print(
                f"codeloop: waiting for {self.model_label}: no reply for {waited:.0f} s; {limit}",
                file=self.out or sys.stderr,
                flush=True,
            )


class _StderrNotices(logging.Handler):
    """Shows codeloop's warnings (such as "retrying in 1 s: HTTP 429") as `codeloop: ...` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"codeloop: {record.getMessage()}", file=sys.stderr, flush=True)
        except Exception:  # a notice that cannot be shown must not end the run
            self.handleError(record)


def _show_notices() -> Callable[[], None]:
    handler = _StderrNotices(logging.WARNING)
    loggers = [logging.getLogger("codeloop.models"), logging.getLogger("codeloop.telemetry")]
    for logger in loggers:
        logger.addHandler(handler)

    def remove() -> None:
        for logger in loggers:
            logger.removeHandler(handler)

    return remove


def _output_never_crashes() -> None:
    # Agent code can print anything, lone surrogates included; text leaving the process is encoded with
    # replacement rather than ending the run with UnicodeEncodeError.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")


def summary_line(result: Any, seconds: float) -> str:
    """The CLI's last line: steps, tokens, cost and time of the run."""
    from .memory import ActionStep

    steps = sum(isinstance(s, ActionStep) for s in result.steps)
    usage = result.token_usage
    cost = "cost unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"
    return (
        f"[{result.state} | {steps} steps | {usage.input_tokens:,} in / {usage.output_tokens:,} out tokens"
        f" | {cost} | {seconds:.1f}s]"
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DEMO_REPLIES, DEMO_TASK, build_demo_agent
    from .testing.server import ScriptedLLMServer

    print(
        "codeloop demo - offline. The model's replies are RECORDED and replayed by a local scripted server;\n"
        "the code they contain runs for real, and the web_search tool searches a small offline corpus.\n"
    )
    with ScriptedLLMServer(DEMO_REPLIES) as server:
        agent = build_demo_agent(server.base_url, args.executor, verbosity_level=0)
        agent.listeners.append(_console_without_summary())
        try:
            result = agent.run(DEMO_TASK, return_full_result=True)
        finally:
            agent.close()
    print(f"\nTask: {DEMO_TASK}\nAnswer: {result.output} seconds (state: {result.state})")
    print(summary_line(result, result.timing.duration or 0.0))
    return 0 if result.state == "success" else 1


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options shared by `run`, `eval` and `batch`: --model, --api-base, --api-key, --timeout, ..."""
    parser.add_argument(
        "--model", help="provider:model, e.g. openai:gpt-4o (default: $CODELOOP_MODEL or detected)"
    )
    parser.add_argument("--api-base", help="base URL of an OpenAI-compatible server")
    parser.add_argument("--api-key", help="API key (default: the provider's environment variable)")
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="seconds one model request may take before it fails and is retried (default: 120)",
    )
    parser.add_argument(
        "--max-retries",
        type=_non_negative_int,
        metavar="N",
        help="retries of a failed model request: 429, 5xx, timeouts, connection errors (default: 3)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="codeloop",
        description="LLM agents that think in Python.",
        epilog=f"`codeloop run` {_EXIT_CODES_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"codeloop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="run an agent on a task",
        description="Run an agent on a task and print its answer.",
        epilog=_EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("task", help="the task; '-' reads it from stdin, @FILE from a file (for long tasks)")
    add_model_arguments(run)
    run.add_argument("--tools", help="comma-separated built-in tools, e.g. web_search,visit_webpage")
    run.add_argument(
        "--require-approval",
        metavar="TOOLS",
        help="comma-separated tools whose every call waits for a person's decision ('*': all); the run then "
        "pauses with exit code 4",
    )
    run.add_argument("--imports", nargs="*", help="extra modules the code may import, e.g. numpy pandas")
    run.add_argument(
        "--executor",
        default="sandbox",
        choices=["sandbox", "local", "docker", "e2b", "modal"],
        help="where code runs (default: sandbox)",
    )
    run.add_argument("--agent", choices=["code", "tool-calling"], default="code")
    run.add_argument(
        "--max-steps",
        type=_positive_int,
        default=20,
        metavar="N",
        help="steps before the run stops (default: 20; exit code 3)",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (with run_id and state) instead of the live run",
    )
    from .store.cli import add_runs_parser, add_store_argument

    add_store_argument(run)
    run.add_argument(
        "--session", metavar="NAME", help="continue this session's conversation (kept in the store)"
    )
    run.add_argument(
        "--journal",
        metavar="DIR",
        help="journal every effect into DIR, so that `codeloop resume` can continue",
    )
    run.set_defaults(handler=_cmd_run)

    for name, text in (
        ("resume", "continue a run from its journal (after a crash, kill -9, an error)"),
        ("approve", "approve (or --deny) calls a paused run awaits, then continue it"),
    ):
        again = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        again.add_argument("run_id", help="the run's id (RunResult.run_id, `codeloop run --json`)")
        if name == "approve":
            again.add_argument(
                "call_ids", nargs="*", metavar="CALL_ID", help="the calls to decide (default: all)"
            )
            again.add_argument(
                "--deny", metavar="REASON", help="deny the calls instead; the model is told REASON"
            )
        again.add_argument(
            "--journal",
            metavar="DIR",
            help="the folder the run was journaled in, for a run started with --journal DIR "
            "(default: the run store of --store)",
        )
        add_store_argument(again)
        again.add_argument("--model", help="a model spec (default: the run's)")
        again.add_argument("--api-key", help="API key (default: the provider's environment variable)")
        again.add_argument("--json", action="store_true", help="print one JSON object")
        again.set_defaults(handler=_cmd_resume, api_base=None, tools=None, imports=None, executor=None)
        again.set_defaults(agent=None, timeout=None, max_retries=None)

    from .cli_jobs import CommandContext, add_job_commands

    # Passed in rather than imported by cli_jobs, so the two modules do not import each other.
    context = CommandContext(
        usage_error=UsageError,
        resolve_model_spec=resolve_model_spec,
        build_model=_build_model,
        build_tools=_build_tools,
        positive_int=_positive_int,
        add_model_arguments=add_model_arguments,
    )
    add_job_commands(sub, context)

    demo = sub.add_parser("demo", help="an offline run with recorded model replies")
    demo.add_argument(
        "--executor",
        default=None,
        choices=["sandbox", "local", "docker", "e2b", "modal"],
        help="where code runs (default: sandbox)",
    )
    demo.set_defaults(handler=_cmd_demo)

    mcp = sub.add_parser("mcp", help="Model Context Protocol: serve an agent to MCP clients")
    mcp_sub = mcp.add_subparsers(dest="mcp_command", required=True)
    serve = mcp_sub.add_parser("serve", help="expose an agent as an MCP server (stdio or streamable HTTP)")
    from .tools.mcp_server import add_arguments

    add_arguments(serve)
    serve.set_defaults(handler=_cmd_mcp_serve)
    add_runs_parser(sub)
    ui = sub.add_parser("ui", help="a local web app: chat with an agent, approve its calls, browse runs")
    ui.add_argument(
        "--agent",
        help="a saved agent folder, or file.py:name / module:name of a function returning a new agent "
        "(one per browser session) or of an agent (shared: runs take turns)",
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=7860)
    ui.add_argument(
        "--token",
        default=os.environ.get("CODELOOP_UI_TOKEN"),
        help="needed for any host but 127.0.0.1 (default: $CODELOOP_UI_TOKEN)",
    )
    ui.add_argument(
        "--max-file-mb", type=float, default=50, help="largest file the code wrote that is offered (MiB)"
    )
    add_store_argument(ui)
    ui.set_defaults(handler=_cmd_ui)
    return parser


def _cmd_ui(args: argparse.Namespace) -> int:
    from .ui import launch
    from .ui.server import check_exposure

    try:
        check_exposure(args.host, args.token)  # before loading anything: a refused bind costs nothing
        if not args.max_file_mb > 0:
            raise ValueError(f"--max-file-mb must be a positive number of MiB, got {args.max_file_mb}")
        source = None
        if args.agent:
            from .ui.chat import agent_source

            source = agent_source(args.agent)
    except (ValueError, ImportError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    launch(
        None if source is None else (source.shared or source.factory),
        host=args.host,
        port=args.port,
        token=args.token,
        store=args.store,
        max_file_mb=args.max_file_mb,
    )
    return 0


def _cmd_mcp_serve(args: argparse.Namespace) -> int:
    from .tools.mcp_server import run_from_arguments

    return run_from_arguments(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `codeloop` command; returns the exit code."""
    _output_never_crashes()
    args = build_parser().parse_args(argv)
    remove_notices = _show_notices()
    tracing = None
    try:
        tracing = _start_tracing()
        return int(args.handler(args))
    except UsageError as exc:
        print(f"codeloop: {exc}", file=sys.stderr)
        return 2
    finally:
        if tracing is not None:
            tracing.shutdown()  # flushes, for a bounded time: an unreachable collector never holds the exit
        remove_notices()


def _start_tracing() -> Any:
    """OpenTelemetry tracing when the standard variables ask for it (`OTEL_TRACES_EXPORTER`, an OTLP endpoint)."""
    from .telemetry import enabled_by_env, instrument

    if not enabled_by_env():
        return None
    try:
        return instrument()
    except (ImportError, ValueError) as exc:
        raise UsageError(f"OpenTelemetry is asked for by the OTEL_* variables, but: {exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
