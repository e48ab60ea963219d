"""Where a worker runs: each executor here is a `WorkerExecutor` with its own way to start the worker.

    sandbox     `SandboxExecutor`: a local subprocess isolated by bubblewrap (the default executor)
    sandbox_fs  the sandbox's filesystem: which host files it needs and how they are mounted
    hosted      `HostedWorkerExecutor`: the common base of the container and cloud executors below
    docker      `DockerExecutor`: the worker in a Docker container
    e2b         `E2BExecutor`: the worker in an E2B cloud sandbox
    modal       `ModalExecutor`: the worker in a Modal sandbox

The protocol they all speak is in `codeloop.executors.worker`. Nothing here is imported by
`import codeloop.executors`; each module loads its SDK only when its executor starts a worker.
"""
