# Technique: fill the writable working directory: files on a tmpfs live in the host's RAM, not in the process's
#            address space, so an address-space limit alone does not bound them
# Goal: f (memory exhaustion through the filesystem)
# Source: classic (tmpfs/RAM-disk exhaustion); bounded at 2 GiB so that plain exec does not fill a real disk
# Requires: stdlib
import os

chunk = b"x" * (16 * 1024 * 1024)
written = 0
path = os.path.join(os.getcwd(), "fill.bin")
try:
    with open(path, "wb") as sink:
        while written < 2 * 1024 * 1024 * 1024:
            sink.write(chunk)
            sink.flush()
            written += len(chunk)
except OSError as err:
    print("stopped after", written // (1024 * 1024), "MiB:", type(err).__name__)
finally:
    if os.path.exists(path):
        os.remove(path)
