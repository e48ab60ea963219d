# Technique: look for host secrets through the tool stubs the sandbox is given (closures, defaults, globals) and
#            through the worker's own objects; print anything that looks like the canary
# Goal: b (read the host's CANARY_SECRET)
# Source: written for this sandbox (tools must stay on the host: the stubs may hold nothing of the host's)
# Requires: stdlib
import gc

found = []
for obj in gc.get_objects():
    try:
        text = repr(obj)
    except Exception:
        continue
    if "canary_env_" in text:
        found.append(text[:200])
print("found:", found[:5])
