# Technique: classic fork bomb; every failed fork is swallowed so the loop keeps trying until it is stopped
# Goal: f (process exhaustion: must be stopped within the time bound, nothing may outlive the step)
# Source: classic; listed in the executor issue's resource payloads (fork bomb) but missing from the shared corpus
# Requires: stdlib (os), POSIX
import os

while True:
    try:
        if os.fork() == 0:
            continue
    except OSError:
        pass
