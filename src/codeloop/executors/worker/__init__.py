"""The worker protocol: codeloop's code runs in a separate Python process (the worker) driven over two byte streams.

    protocol   the wire format: size-limited JSON lines and the safe value format, shared by both sides
    guest      the program that runs inside the worker (standard library only, shipped to it on stdin)
    host       `WorkerExecutor`, the host side that drives a worker over a `Channel` and runs its tool calls
    bundle     how the guest's code is shipped: the `BOOTSTRAP` given to `python -c` and the modules it loads
    channels   `Channel`s to a worker: a local subprocess's pipes, or queues fed by a cloud SDK's callbacks
    seccomp    the system-call filter every worker installs on itself before running agent code

Where the worker runs (bubblewrap, Docker, E2B, Modal) is in `codeloop.executors.transports`. Nothing here is
imported by `import codeloop.executors`.
"""
