# Technique: a context manager whose __exit__ returns True around a catch-all handler, nested in loops, to swallow
#            whatever a watchdog raises and keep spinning
# Goal: f (CPU exhaustion despite exception-injecting timeouts)
# Source: written for codeloop (variant of the corpus's 117 through __exit__)
# Requires: stdlib
class Swallow:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return True


n = 0
while True:
    with Swallow():
        try:
            while True:
                n += 1
        except BaseException:
            pass
