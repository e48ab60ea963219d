"""`codeloop run | demo`: the command line."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "resolve_model_spec", "summary_line"]

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
    from .models import model as model_from_spec

    spec = resolve_model_spec(args.model)
    kwargs: dict[str, Any] = {}
    if args.api_base:
        kwargs["api_base"] = args.api_base
    if args.api_key:
        kwargs["api_key"] = args.api_key
    try:
        return model_from_spec(spec, **kwargs)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _build_tools(names: str | None) -> list[Any]:
    if not names:
        return []
    from .tools import load_builtin_tools

    try:
        return load_builtin_tools(names)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _cmd_run(args: argparse.Namespace) -> int:
    from .agents import CodeAgent, ToolCallingAgent

    model = _build_model(args)
    tools = _build_tools(args.tools)
    common: dict[str, Any] = {"max_steps": args.max_steps, "verbosity_level": 0 if args.json else 1}
    if args.agent == "code":
        agent: Any = CodeAgent(
            tools, model, executor=args.executor, additional_authorized_imports=args.imports or (), **common
        )
    else:
        agent = ToolCallingAgent(tools, model, **common)
    started = time.perf_counter()
    try:
        result = agent.run(args.task, return_full_result=True)
    except KeyboardInterrupt:
        result = agent._last_result
    finally:
        close = getattr(agent, "close", None)
        if close is not None:
            close()
    if result is None:
        print("Interrupted before the first step.", file=sys.stderr)
        return 130
    if args.json:
        print(
            json.dumps(
                {
                    "output": result.to_dict()["output"],
                    "state": result.state,
                    "steps": result.to_dict()["steps"],
                    "token_usage": result.token_usage.to_dict(),
                    "cost_usd": result.cost_usd,
                    "duration_s": round(time.perf_counter() - started, 3),
                    "error": result.error,
                }
            )
        )
    elif result.state == "interrupted":
        print("\nInterrupted. The steps so far:", file=sys.stderr)
        agent.replay()
    else:
        print(result.output if result.state in ("success", "max_steps") else f"Run ended: {result.error}")
        print(summary_line(result, time.perf_counter() - started))
    if result.state == "interrupted":
        return 130
    if result.state == "error":
        return 1
    return 0


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
    from .demo import DEMO_TASK, run_demo

    print(
        "codeloop demo - offline. The model's replies are RECORDED and replayed by a local scripted server;\n"
        "the code they contain runs for real, and the web_search tool searches a small offline corpus.\n"
    )
    started = time.perf_counter()
    result = run_demo(executor=args.executor)
    print(f"\nTask: {DEMO_TASK}\nAnswer: {result.output} seconds (state: {result.state})")
    print(summary_line(result, time.perf_counter() - started))
    return 0 if result.state == "success" else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="codeloop", description="LLM agents that think in Python.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an agent on a task")
    run.add_argument("task")
    run.add_argument(
        "--model", help="provider:model, e.g. openai:gpt-4o (default: $CODELOOP_MODEL or detected)"
    )
    run.add_argument("--api-base", help="base URL of an OpenAI-compatible server")
    run.add_argument("--api-key", help="API key (default: the provider's environment variable)")
    run.add_argument("--tools", help="comma-separated built-in tools, e.g. web_search,visit_webpage")
    run.add_argument("--imports", nargs="*", help="extra modules the code may import, e.g. numpy pandas")
    run.add_argument(
        "--executor",
        default="sandbox",
        choices=["sandbox", "local", "docker", "e2b", "modal"],
        help="where code runs (default: sandbox)",
    )
    run.add_argument("--agent", choices=["code", "tool-calling"], default="code")
    run.add_argument("--max-steps", type=int, default=20)
    run.add_argument("--json", action="store_true", help="print one JSON object instead of the live run")
    run.set_defaults(handler=_cmd_run)

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
    return parser


def _cmd_mcp_serve(args: argparse.Namespace) -> int:
    from .tools.mcp_server import run_from_arguments

    return run_from_arguments(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `codeloop` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"codeloop: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
