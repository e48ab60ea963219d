# Technique: start sleeping threads until the interpreter refuses, then keep them all alive past the step
# Goal: f (thread exhaustion: bounded, and the executor must still run the next step)
# Source: classic; listed in the executor issue's resource payloads (thread bomb) but missing from the shared corpus
# Requires: stdlib (threading, time)
import threading
import time

threads = []
while len(threads) < 100000:
    try:
        worker = threading.Thread(target=time.sleep, args=(3600,), daemon=True)
        worker.start()
    except RuntimeError:
        break
    threads.append(worker)
print("threads started:", len(threads))
