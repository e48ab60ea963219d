# Technique: a suspended generator whose finally block spins: it runs when the generator is closed, i.e. when
#            the host drops the executor's namespace
# Goal: f (deferred CPU exhaustion when state is dropped)
# Source: written for codeloop (generator finalisation as a host-triggered hook)
# Requires: stdlib
def ticker():
    try:
        while True:
            yield 1
    finally:
        n = 0
        while True:
            n += 1


clock = ticker()
next(clock)
print("generator suspended")
