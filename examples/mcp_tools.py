"""Tools from an MCP server: the reference time server from PyPI, over stdio.

pip install "codeloop[mcp,openai]" mcp-server-time
python examples/mcp_tools.py openai:gpt-4o
"""

from __future__ import annotations

import sys

from codeloop import CodeAgent, ToolCollection

if __name__ == "__main__":
    spec = sys.argv[1] if len(sys.argv) > 1 else "openai:gpt-4o"
    with ToolCollection.from_mcp(
        {"command": sys.executable, "args": ["-m", "mcp_server_time"]}
    ) as time_tools:
        agent = CodeAgent(tools=[*time_tools.tools], model=spec)
        print(agent.run("What time is it now in Tokyo, and how many hours ahead of London is that?"))
