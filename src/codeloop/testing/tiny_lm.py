"""A tiny randomly initialised chat model built in memory, and a logits processor that makes it follow a script.

Tests of `TransformersModel` need a real model running real `generate` calls without downloading weights:
`tiny_chat_model()` builds a two-layer Llama with a byte-level tokenizer and a ChatML template that renders
tools, in well under a second on CPU. `ScriptedLogits` then forces each generation to spell the next scripted
reply (tool calls as `<tool_call>` blocks) followed by end-of-turn, so runs are deterministic while the
template, the forward passes, stop strings and streaming are all the real thing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ..models.base import ChatMessage
from .scripted import Reply, ScriptExhausted, ScriptRequest, normalize_reply

__all__ = ["tiny_chat_model", "ScriptedLogits", "reply_as_text", "CHATML_TOOLS_TEMPLATE"]

CHATML_TOOLS_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n# Tools\n{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}"
    'Call a tool with <tool_call>{"name": ..., "arguments": ...}</tool_call><|im_end|>\n{% endif %}'
    "{% for message in messages %}<|im_start|>{{ message.role }}\n"
    "{% if message.content %}{{ message.content }}{% endif %}"
    "{% for call in message.tool_calls or [] %}<tool_call>"
    '{{ {"name": call.function.name, "arguments": call.function.arguments} | tojson }}</tool_call>'
    "{% endfor %}<|im_end|>\n{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""A ChatML chat template (Qwen-style) that renders `tools` and assistant tool calls."""

_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tiny_chat_model(seed: int = 0) -> tuple[Any, Any]:
    """`(model, tokenizer)`: a randomly initialised 2-layer Llama and a byte-level tokenizer, built offline."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for token in _SPECIALS:
        vocab[token] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML_TOOLS_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


def reply_as_text(msg: ChatMessage) -> str:
    """What a ChatML tool-calling model would write for `msg`: its text, then `<tool_call>` blocks."""
    text = msg.text
    for call in msg.tool_calls:
        arguments = call.arguments if isinstance(call.arguments, dict) else call.arguments
        text += "<tool_call>" + json.dumps({"name": call.name, "arguments": arguments}) + "</tool_call>"
    return text


class ScriptedLogits:
    """A `LogitsProcessor` that forces each `generate` call to spell the next scripted reply, then end the turn.

    Pass it as `logits_processor=LogitsProcessorList([ScriptedLogits(tokenizer, script)])` (with
    `do_sample=False`). `script` is a list of replies (as `normalize_reply` accepts them) or a function of a
    `ScriptRequest` whose messages are left empty (the processor sees tokens, not messages); `prompts` records
    each decoded prompt.
    """

    def __init__(self, tokenizer: Any, script: Sequence[Reply] | Callable[[ScriptRequest], Reply]) -> None:
        self.tokenizer = tokenizer
        self.script = script
        self.prompts: list[str] = []
        self._targets: list[int] = []
        self._prompt_length = 0
        self._last: Any = None

    def _new_generation(self, input_ids: Any) -> bool:
        if self._last is None or input_ids.shape[-1] != self._last.shape[-1] + 1:
            return True
        return not bool((input_ids[0, :-1] == self._last[0]).all())

    def _start(self, input_ids: Any) -> None:
        index = len(self.prompts)
        self.prompts.append(self.tokenizer.decode(input_ids[0]))
        if callable(self.script):
            reply = self.script(ScriptRequest(messages=[], index=index))
        elif index < len(self.script):
            reply = self.script[index]
        else:
            raise ScriptExhausted(
                f"the script has {len(self.script)} replies; generation {index + 1} asked for another"
            )
        text = reply_as_text(normalize_reply(reply, index))
        self._targets = [*self.tokenizer.encode(text, add_special_tokens=False), self.tokenizer.eos_token_id]
        self._prompt_length = int(input_ids.shape[-1])

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self._new_generation(input_ids):
            self._start(input_ids)
        self._last = input_ids
        position = int(input_ids.shape[-1]) - self._prompt_length
        target = self._targets[min(position, len(self._targets) - 1)]
        forced = scores.new_full(scores.shape, float("-inf"))
        forced[:, target] = 0.0
        return forced
