# Technique: one native call that never returns and never checks for signals: sum() over an endless iterator
#            runs entirely in C while holding the GIL, so no in-process mechanism can stop it
# Goal: f (CPU exhaustion in a single native call)
# Source: written for codeloop (the limit of in-process execution; only a separate process can be killed)
# Requires: stdlib (itertools)
import itertools

print(sum(itertools.count()))
