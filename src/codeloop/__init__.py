"""codeloop: LLM agents that think in Python."""
