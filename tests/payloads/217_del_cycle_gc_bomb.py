# Technique: a reference cycle whose member has a spinning __del__: it runs whenever the host's garbage collector
#            happens to collect the cycle - in any host thread, long after the step
# Goal: f (deferred CPU exhaustion outside the step's limits)
# Source: smolagents issue #2395 family, with a cycle so that dropping the namespace is not enough
# Requires: stdlib
class Node:
    def __init__(self):
        self.me = self

    def __del__(self):
        n = 0
        while True:
            n += 1


Node()
holder = Node()
del holder
print("cycle left for the host's garbage collector")
