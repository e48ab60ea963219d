# Technique: a blocking call that waits on a lock in native code with the GIL released: an exception injected
#            into the thread is never raised, so a thread-based timeout cannot stop it
# Goal: f (time exhaustion)
# Source: written for codeloop (queue is in the default allow-list and no thread can ever fill the queue)
# Requires: stdlib (queue)
import queue

jobs = queue.Queue()
jobs.mutex.acquire()
jobs.mutex.acquire()
print(jobs.get())
