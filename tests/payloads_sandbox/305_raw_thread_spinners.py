# Technique: CPU spinners started with the low-level _thread module, which threading.active_count() does not see,
#            so a check that counts threading.Thread objects misses them; the step itself returns at once
# Goal: f (CPU burning after the step)
# Source: variant of 115_thread_spinner_leak written for the sandbox's leftover-thread check
# Requires: stdlib (_thread)
import _thread


def spin():
    n = 0
    while True:
        n += 1


for _ in range(4):
    _thread.start_new_thread(spin, ())
print("raw spinners started")
