# Technique: print in an endless loop: unbounded captured output exhausts memory unless capture is bounded
# Goal: f (output exhaustion)
# Source: classic
# Requires: stdlib
line = "x" * 10_000
while True:
    print(line)
