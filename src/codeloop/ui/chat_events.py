"""The agent's events as the chat page shows them: small JSON objects, code already highlighted.

Everything here runs on the server, so the page needs no highlighting library and no asset from a CDN: code
becomes HTML with Pygments (a dependency of rich, so always present), and images become data URLs or links to
files the session keeps.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import events as ev

__all__ = ["describe_event", "highlight_python", "highlight_css", "thought_text", "image_urls"]

_FENCED = re.compile(r"```[a-zA-Z0-9_+-]*\n.*?(?:```|$)", re.DOTALL)
_CODE_TAGS = re.compile(r"<code>.*?(?:</code>|$)", re.DOTALL)
_TEXT_LIMIT = 20_000
"""Characters of one log or observation sent to the page; the run store keeps the whole text."""


def highlight_python(code: str) -> str:
    """`code` as HTML with Pygments' token classes (under `.hl`), or escaped text if Pygments fails."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
    except ImportError:  # rich needs Pygments, so this is only a broken install
        return f'<pre class="hl">{html.escape(code)}</pre>'
    return highlight(code, PythonLexer(), HtmlFormatter(cssclass="hl", nowrap=False))


def highlight_css() -> str:
    """The stylesheet for `highlight_python`'s classes (empty without Pygments)."""
    try:
        from pygments.formatters import HtmlFormatter
    except ImportError:
        return ""
    return str(HtmlFormatter(style="friendly").get_style_defs(".hl"))


def thought_text(reply: str) -> str:
    """The model's reply without its code (shown apart, highlighted): what it thought before acting."""
    text = _CODE_TAGS.sub("", _FENCED.sub("", reply))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _clip(text: str) -> str:
    if len(text) <= _TEXT_LIMIT:
        return text
    return (
        text[:_TEXT_LIMIT]
        + f"\n... ({len(text) - _TEXT_LIMIT:,} more characters; the run store has them all)"
    )


def image_urls(parts: list[dict[str, Any]]) -> list[str]:
    """Image content parts (`codeloop.memory.image_parts`) as URLs an <img> can show."""
    urls = []
    for part in parts:
        if part.get("url"):
            urls.append(str(part["url"]))
        elif part.get("data"):
            urls.append(f"data:{part.get('mime_type') or 'image/png'};base64,{part['data']}")
    return urls


def _usage(usage: Any) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {"input_tokens": int(usage.input_tokens), "output_tokens": int(usage.output_tokens)}


def _jsonable(value: Any) -> Any:
    from ..memory import to_jsonable

    return to_jsonable(value)


def _image_type(head: bytes) -> str | None:
    for magic, mime in ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif")):
        if head.startswith(magic):
            return mime
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def describe_output(output: Any, keep_file: Callable[[Path], str | None]) -> dict[str, Any]:
    """A final answer for the page: its text, images as URLs, files as download links (`keep_file(path)`,
    None for a file that may not be offered)."""
    described: dict[str, Any] = {"text": "", "images": [], "files": []}
    if hasattr(output, "save") and callable(output.save) and hasattr(output, "size"):  # a PIL image
        import io

        buffer = io.BytesIO()
        output.save(buffer, format="PNG")
        described["images"].append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
        described["text"] = f"(an image, {output.size[0]}x{output.size[1]})"
        return described
    if isinstance(output, bytes | bytearray):
        mime = _image_type(bytes(output[:12]))
        if mime is not None:  # e.g. a plot saved to BytesIO: shown, and downloadable from the image itself
            described["images"].append(f"data:{mime};base64," + base64.b64encode(bytes(output)).decode())
            described["text"] = f"(an image, {len(output):,} bytes)"
            return described
    if isinstance(output, str | Path) and len(str(output)) < 4096:
        try:
            path = Path(output).expanduser()
            is_file = path.is_file()
        except (OSError, ValueError):
            is_file = False
        if is_file:
            url = keep_file(path)
            if url is not None:
                described["files"].append({"name": path.name, "url": url})
                if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"):
                    described["images"].append(url)
    if isinstance(output, str):
        described["text"] = output
    else:
        try:
            described["text"] = json.dumps(_jsonable(output), ensure_ascii=False, indent=2)
        except (TypeError, ValueError):
            described["text"] = repr(output)
    return described


def describe_event(
    event: ev.Event,
    depth: int,
    *,
    cost: Callable[[Any], float | None],
    keep_file: Callable[[Path], str | None],
) -> dict[str, Any] | None:
    """`event` as the page's JSON (None for events the page does not show). `depth` is 0 for the session's
    agent, 1 for a managed agent it called, and so on: the page nests those steps under their caller."""
    base: dict[str, Any] = {"agent": event.agent, "depth": depth}
    if isinstance(event, ev.RunStarted):
        return {**base, "type": "run_started", "task": event.task, "run_id": event.run_id}
    if isinstance(event, ev.StepStarted):
        return {**base, "type": "step_started", "step": event.step_number}
    if isinstance(event, ev.ModelTextDelta):
        return {**base, "type": "text_delta", "text": event.text}
    if isinstance(event, ev.ModelOutput):
        thought = thought_text(event.message.text or "")
        return {**base, "type": "thought", "step": event.step_number, "text": thought} if thought else None
    if isinstance(event, ev.CodeAction):
        return {**base, "type": "code", "step": event.step_number, "html": highlight_python(event.code)}
    if isinstance(event, ev.ToolCallStarted):
        arguments = event.call.arguments
        shown = arguments if isinstance(arguments, str) else json.dumps(_jsonable(arguments), indent=2)
        return {
            **base,
            "type": "tool_call",
            "step": event.step_number,
            "tool": event.call.name,
            "arguments": shown,
        }
    if isinstance(event, ev.ExecutionLog):
        return {**base, "type": "log", "text": _clip(event.text)}
    if isinstance(event, ev.Observation):
        return {**base, "type": "observation", "step": event.step_number, "text": _clip(event.text)}
    if isinstance(event, ev.PlanCreated):
        return {**base, "type": "plan", "text": event.plan.plan or ""}
    if isinstance(event, ev.StepError):
        return {**base, "type": "error", "step": event.step_number, "text": str(event.error)}
    if isinstance(event, ev.StepFinished):
        step = event.step
        return {
            **base,
            "type": "step_finished",
            "step": step.step_number,
            **_usage(step.token_usage),
            "cost_usd": cost(step.token_usage) if step.token_usage is not None else None,
            "duration_s": step.timing.duration,
            "images": image_urls(step.observation_images),
        }
    if isinstance(event, ev.FinalAnswer):
        return {**base, "type": "final_answer", **describe_output(event.output, keep_file)}
    if isinstance(event, ev.RunFinished):
        result = event.result
        return {
            **base,
            "type": "run_finished",
            "run_id": result.run_id,
            "state": result.state,
            "error": result.error,
            **_usage(result.token_usage),
            "cost_usd": result.cost_usd,
            "duration_s": result.timing.duration,
            "pending": [p.to_dict() for p in result.pending],
        }
    if isinstance(event, ev.ModelRetry):
        return {**base, "type": "notice", "text": event.describe()}
    if isinstance(event, ev.ToolProgress):
        return {**base, "type": "notice", "text": event.describe()}
    return None
