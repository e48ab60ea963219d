# Technique: the final answer is an object whose __repr__/__str__ never return: the host hangs when it shows
#            the answer to the user, after the step (and its time limit) is over
# Goal: f (deferred CPU exhaustion in the host's rendering)
# Source: smolagents issue #2395 family (host-triggered dunders) applied to the final answer
# Requires: stdlib
class Answer:
    def __repr__(self):
        n = 0
        while True:
            n += 1

    __str__ = __repr__


try:
    final_answer(Answer())
except NameError:
    print(Answer.__name__)
