"""`TransformersModel`: a local model run in-process with Hugging Face `transformers` (`codeloop[transformers]`).

The prompt is built by the tokenizer's own chat template, with tools passed to the template when it renders
them (otherwise they are described in a system message). Tool calls are read back from the
`<tool_call>{"name": ..., "arguments": ...}</tool_call>` blocks that Qwen, Hermes and similar templates teach.
Stop sequences end generation through `stop_strings`; streaming uses `TextIteratorStreamer`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

from .._threads import start_thread
from ..errors import ModelConfigurationError
from .base import (
    ApiModel,
    ChatMessage,
    StreamDelta,
    TokenUsage,
    ToolCall,
    message_to_delta,
    parse_arguments,
    trim_at_stop,
)
from .remote import StopTrimmer

__all__ = ["TransformersModel", "parse_tool_call_blocks"]

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)

_TOOLS_INSTRUCTION = (
    "You can call these tools. To call one, write exactly:\n"
    '<tool_call>{{"name": "<tool name>", "arguments": {{...}}}}</tool_call>\n'
    "Tools:\n{specs}"
)


def parse_tool_call_blocks(text: str) -> tuple[str, list[ToolCall]]:
    """Split generated text into the prose and the `<tool_call>` blocks it contains."""
    calls: list[ToolCall] = []
    for i, match in enumerate(_TOOL_CALL.finditer(text)):
        body = match.group(1)
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            arguments = data.get("arguments", data.get("parameters", {}))
            calls.append(
                ToolCall(
                    id=f"call_{i}",
                    name=data["name"],
                    arguments=parse_arguments(arguments)
                    if isinstance(arguments, str)
                    else dict(arguments or {}),
                )
            )
        else:
            # Keep a malformed call as a call with its raw text, so the agent can tell the model what was wrong.
            name = re.search(r'"name"\s*:\s*"([^"]+)"', body)
            calls.append(ToolCall(id=f"call_{i}", name=name.group(1) if name else "", arguments=body))
    prose = _TOOL_CALL.sub("", text).strip() if calls else text
    return prose, calls


class TransformersModel(ApiModel):
    """A causal LM run locally with `transformers`.

    Args:
        model_id: A Hub id or local path, loaded with `AutoModelForCausalLM` / `AutoTokenizer` unless `model`
            and `tokenizer` are given.
        model: An already loaded model (skips loading).
        tokenizer: An already loaded tokenizer with a chat template.
        device: e.g. `"cpu"`, `"cuda"`; defaults to where the model already is.
        max_new_tokens: Cap on generated tokens per reply.
        model_kwargs: Extra arguments for `from_pretrained` (`torch_dtype`, `trust_remote_code`, ...).
        **generate_kwargs: Passed to `model.generate` (`temperature`, `do_sample`, `logits_processor`, ...).
    """

    provider = "transformers"
    supports_response_format = False
    """Constrained JSON decoding is not built in; `response_format` is refused at the call."""

    def __init__(
        self,
        model_id: str,
        *,
        model: Any = None,
        tokenizer: Any = None,
        device: str | None = None,
        max_new_tokens: int = 1024,
        model_kwargs: dict[str, Any] | None = None,
        **generate_kwargs: Any,
    ) -> None:
        super().__init__(model_id, **generate_kwargs)
        try:
            import transformers
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ModelConfigurationError(
                'TransformersModel needs `transformers` and `torch`: pip install "codeloop[transformers]"'
            ) from exc
        if tokenizer is None:
            tokenizer = transformers.AutoTokenizer.from_pretrained(model_id)
        if model is None:
            model = transformers.AutoModelForCausalLM.from_pretrained(model_id, **(model_kwargs or {}))
        if device is not None:
            model = model.to(device)
        if not getattr(tokenizer, "chat_template", None):
            raise ModelConfigurationError(
                f"transformers: the tokenizer of {model_id!r} has no chat template; pass a tokenizer with "
                "`chat_template` set (or set tokenizer.chat_template = '...')"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.generate_kwargs = generate_kwargs
        self._lock = threading.Lock()

    # -- prompt ------------------------------------------------------------------------------------------------
    def _template_messages(
        self, messages: list[ChatMessage], tools: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]]:
        rendered: list[dict[str, Any]] = []
        for msg in messages:
            if isinstance(msg.content, list) and any(p.get("type") == "image" for p in msg.content):
                raise ModelConfigurationError(
                    f"transformers: {self.model_id!r} is run as a text model; images in messages are not supported"
                )
            entry: dict[str, Any] = {"role": msg.role, "content": msg.text}
            if msg.role == "assistant" and msg.tool_calls:
                entry["tool_calls"] = [
                    {
                        "type": "function",
                        "function": {
                            "name": c.name,
                            "arguments": c.arguments if isinstance(c.arguments, dict) else {},
                        },
                    }
                    for c in msg.tool_calls
                ]
            if msg.role == "tool":
                entry["tool_call_id"] = msg.tool_call_id
                if msg.name:
                    entry["name"] = msg.name
            rendered.append(entry)
        if tools and not self.template_renders_tools:
            specs = "\n".join(json.dumps(t) for t in tools)
            rendered.insert(0, {"role": "system", "content": _TOOLS_INSTRUCTION.format(specs=specs)})
        return rendered

    @property
    def template_renders_tools(self) -> bool:
        """Whether the tokenizer's chat template renders a `tools` list."""
        template = self.tokenizer.chat_template
        text = template if isinstance(template, str) else json.dumps(template)
        return "tools" in text

    def _inputs(self, messages: list[ChatMessage], tools: list[dict[str, Any]] | None) -> Any:
        template_tools = (
            [{"type": "function", "function": t} for t in tools]
            if tools and self.template_renders_tools
            else None
        )
        inputs = self.tokenizer.apply_chat_template(
            self._template_messages(messages, tools),
            tools=template_tools,
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        return inputs.to(self.model.device)

    def _generate_options(self, inputs: Any, stop: list[str] | None) -> dict[str, Any]:
        options: dict[str, Any] = {**inputs, "max_new_tokens": self.max_new_tokens}
        if self.tokenizer.pad_token_id is None and self.tokenizer.eos_token_id is not None:
            options["pad_token_id"] = self.tokenizer.eos_token_id
        if stop:
            options["stop_strings"] = [s for s in stop if s]
            options["tokenizer"] = self.tokenizer
        options.update(self.generate_kwargs)
        return options

    @staticmethod
    def _check(response_format: dict[str, Any] | None) -> None:
        if response_format is not None:
            raise ModelConfigurationError(
                "transformers: response_format (constrained JSON output) is not supported by TransformersModel; "
                "use a served model (vLLM, TGI, Ollama) for structured outputs"
            )

    def _reply(self, text: str, stop: list[str] | None, usage: TokenUsage) -> ChatMessage:
        prose, calls = parse_tool_call_blocks(trim_at_stop(text, stop))
        return ChatMessage(role="assistant", content=prose or None, tool_calls=calls, token_usage=usage)

    # -- calls -------------------------------------------------------------------------------------------------
    def generate(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatMessage:
        """One reply, generated locally; tool calls parsed from `<tool_call>` blocks."""
        self._check(response_format)
        inputs = self._inputs(messages, tools)
        prompt_length = int(inputs["input_ids"].shape[-1])
        with self._lock:  # one generation at a time: the model is shared
            output = self.model.generate(**self._generate_options(inputs, stop))
        new_tokens = output[0][prompt_length:]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return self._reply(
            text, stop, TokenUsage(input_tokens=prompt_length, output_tokens=int(new_tokens.shape[-1]))
        )

    def generate_stream(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Iterator[StreamDelta]:
        """Text as it is generated; tool calls and usage in the last delta."""
        self._check(response_format)
        from transformers import TextIteratorStreamer

        inputs = self._inputs(messages, tools)
        prompt_length = int(inputs["input_ids"].shape[-1])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                with self._lock:
                    result["output"] = self.model.generate(
                        **self._generate_options(inputs, stop), streamer=streamer
                    )
            except BaseException as exc:  # handed to the consuming side
                result["error"] = exc
                streamer.end()

        worker = start_thread(run, name="codeloop-transformers-generate")
        # A <tool_call> block is not prose: the trimmer stops handing out text where one begins (even when the
        # marker is split across pieces), and the calls come parsed in the last delta.
        trimmer = StopTrimmer([*(stop or []), "<tool_call>"])
        text = ""
        for piece in streamer:
            text += piece
            safe = trimmer.feed(piece)
            if safe:
                yield StreamDelta(content=safe)
        worker.join()
        if "error" in result:
            raise result["error"]
        generated = int(result["output"].shape[-1]) - prompt_length
        reply = self._reply(text, stop, TokenUsage(input_tokens=prompt_length, output_tokens=generated))
        # `_reply` sets no reasoning, so the delta carries the remaining text, the parsed calls and usage.
        yield message_to_delta(reply, trimmer.flush() or None)
