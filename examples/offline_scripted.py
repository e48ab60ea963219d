"""A complete run with no network and no key: a scripted model, real code, a real tool call, streamed events.

    python examples/offline_scripted.py

This is how to test your own agents: script the model's replies, let everything else run for real.
"""

from __future__ import annotations

from codeloop import CodeAgent, events, tool
from codeloop.testing import ScriptedModel


@tool
def word_lengths(text: str) -> dict:
    """Maps each word of a text to its length.

    Args:
        text: Any text.
    """
    return {word: len(word) for word in text.split()}


REPLIES = [
    "Thought: measure the words first.\n```python\nlengths = word_lengths('code is the action space')\nprint(lengths)\n```",
    "Thought: the longest one wins.\n```python\nfinal_answer(max(lengths, key=lengths.get))\n```",
]

if __name__ == "__main__":
    agent = CodeAgent(tools=[word_lengths], model=ScriptedModel(REPLIES), executor="local", verbosity_level=0)
    for event in agent.run("Which word of 'code is the action space' is the longest?", stream=True):
        if isinstance(event, events.CodeAction):
            print(f"--- step {event.step_number} code ---\n{event.code}")
        elif isinstance(event, events.Observation):
            print(f"--- observation ---\n{event.text}")
        elif isinstance(event, events.RunFinished):
            print(f"answer: {event.result.output}")
