"""Executors refuse a bad choice or setting when they are created, with a message that says how to fix it.

One check serves `create_executor`, the agents and the executor classes built directly: an unknown name gets the
closest known one, a missing SDK the `pip install` line of its extra, and a zero or negative limit its name and
the accepted range. Nothing here starts a worker.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
from tests.transport_fakes import FakeDockerClient, FakeE2BSandbox, FakeModalSandbox

from codeloop import CodeAgent
from codeloop.errors import MissingExtraError
from codeloop.executors import (
    DockerExecutor,
    E2BExecutor,
    ExecutionResult,
    ModalExecutor,
    SandboxExecutor,
    create_executor,
)
from codeloop.testing import ScriptedModel

HOSTED = [
    (DockerExecutor, "docker", "docker"),
    (E2BExecutor, "e2b", "e2b"),
    (ModalExecutor, "modal", "modal"),
]


@pytest.mark.parametrize(("cls", "kind", "module"), HOSTED)
def test_a_hosted_executor_built_directly_names_its_missing_extra_at_construction(
    cls: Callable[..., Any], kind: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # how Python marks a module that cannot be imported
    with pytest.raises(MissingExtraError) as caught:
        cls()
    assert str(caught.value) == f'{cls.__name__} needs the `{module}` SDK: pip install "codeloop[{kind}]"'
    assert isinstance(caught.value, ImportError)  # code that catches ImportError keeps working


@pytest.mark.parametrize(("kind", "module"), [("docker", "docker"), ("e2b", "e2b"), ("modal", "modal")])
def test_create_executor_names_the_missing_extra(
    kind: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(
        MissingExtraError,
        match=rf'executor=\'{kind}\' needs the `{module}` SDK: pip install "codeloop\[{kind}\]"',
    ):
        create_executor(kind)


@pytest.mark.parametrize(
    ("make", "module"),
    [
        (lambda: DockerExecutor(client=FakeDockerClient()), "docker"),
        (lambda: E2BExecutor(sandbox_factory=FakeE2BSandbox), "e2b"),
        (lambda: ModalExecutor(sandbox_factory=FakeModalSandbox), "modal"),
        (lambda: create_executor("docker", client=FakeDockerClient()), "docker"),
    ],
)
def test_a_stand_in_for_the_sdk_needs_no_sdk(
    make: Callable[[], Any], module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    executor = make()
    executor.close()


def test_create_executor_suggests_the_closest_name() -> None:
    with pytest.raises(ValueError) as caught:
        create_executor("sandbx")
    assert str(caught.value) == (
        "unknown executor 'sandbx'; did you mean 'sandbox'? Valid names: 'sandbox', 'local', 'docker', 'e2b', 'modal'."
    )


@pytest.mark.parametrize("spec", ["sandbx", "Dokcer", "kubernetes", 3])
def test_agents_and_create_executor_refuse_a_choice_with_the_same_words(spec: Any) -> None:
    with pytest.raises((ValueError, TypeError)) as direct:
        create_executor(spec)
    with pytest.raises(type(direct.value)) as through_agent:
        CodeAgent(tools=[], model=ScriptedModel([]), executor=spec)
    assert str(through_agent.value) == str(direct.value)


def test_executor_kwargs_with_an_executor_instance_are_refused_when_the_agent_is_built() -> None:
    class Custom:
        def send_tools(self, tools: dict[str, Any]) -> None: ...
        def send_variables(self, variables: dict[str, Any]) -> None: ...
        def run(self, code: str) -> ExecutionResult:
            return ExecutionResult(None, "")

        def close(self) -> None: ...
        def __enter__(self) -> Custom:
            return self

        def __exit__(self, *exc: object) -> None: ...

    model = ScriptedModel([])
    with pytest.raises(
        ValueError, match=r"executor_kwargs \['timeout'\] cannot apply to an executor instance"
    ):
        CodeAgent(tools=[], model=model, executor=Custom(), executor_kwargs={"timeout": 1})


def _docker(**kwargs: Any) -> DockerExecutor:
    return DockerExecutor(client=FakeDockerClient(), **kwargs)


def _e2b(**kwargs: Any) -> E2BExecutor:
    return E2BExecutor(sandbox_factory=FakeE2BSandbox, **kwargs)


def _modal(**kwargs: Any) -> ModalExecutor:
    return ModalExecutor(sandbox_factory=FakeModalSandbox, **kwargs)


@pytest.mark.parametrize(
    ("make", "setting", "value", "message"),
    [
        # Docker reads cpus=0 and pids_limit=0 or -1 as "no limit": a typo would silently lift the bound.
        (_docker, "cpus", 0, "cpus must be above 0, got 0"),
        (_docker, "pids_limit", 0, "pids_limit must be above 0, got 0"),
        (_docker, "pids_limit", -1, "pids_limit must be above 0, got -1"),
        (_docker, "max_memory_mb", 0, "max_memory_mb must be above 0, got 0"),
        (_docker, "tmpfs_mb", -256, "tmpfs_mb must be above 0, got -256"),
        (_docker, "startup_timeout", 0, "startup_timeout must be above 0, got 0"),
        (_docker, "timeout", -1, r"timeout must be above 0 \(or None for no limit\), got -1"),
        (_e2b, "sandbox_lifetime", 0, "sandbox_lifetime must be above 0, got 0"),
        (_e2b, "max_memory_mb", -1, r"max_memory_mb must be above 0 \(or None for no limit\), got -1"),
        (_e2b, "startup_timeout", -5.0, "startup_timeout must be above 0, got -5.0"),
        (_e2b, "timeout", float("inf"), "timeout must be above 0"),
        (_modal, "sandbox_lifetime", -600, "sandbox_lifetime must be above 0, got -600"),
        (_modal, "cpu", 0.0, r"cpu must be above 0 \(or None for no limit\), got 0.0"),
        (_modal, "memory_mb", 0, "memory_mb must be above 0"),
        (_modal, "max_message_mb", 0, "max_message_mb must be above 0, got 0"),
        (SandboxExecutor, "timeout", 0, "timeout must be above 0"),
        (SandboxExecutor, "cpu_seconds", -1, "cpu_seconds must be above 0"),
        (SandboxExecutor, "max_memory_mb", 0, "max_memory_mb must be above 0, got 0"),
        (
            SandboxExecutor,
            "max_print_outputs_length",
            -1,
            "max_print_outputs_length must be 0 or more, got -1",
        ),
    ],
)
def test_a_zero_or_negative_setting_is_refused_with_its_name_and_range(
    make: Callable[..., Any], setting: str, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make(**{setting: value})


@pytest.mark.parametrize(
    ("make", "setting", "value"),
    [
        (_docker, "pids_limit", 2.5),
        (_docker, "cpus", "1"),
        (_e2b, "sandbox_lifetime", True),
        (SandboxExecutor, "tmpfs_mb", "256"),
    ],
)
def test_a_setting_of_the_wrong_type_is_refused(make: Callable[..., Any], setting: str, value: Any) -> None:
    with pytest.raises(TypeError, match=rf"{setting} must be (an integer|a number)"):
        make(**{setting: value})


def test_the_accepted_settings_are_kept() -> None:
    executor = _docker(
        cpus=0.5, pids_limit=16, max_memory_mb=256, tmpfs_mb=64, timeout=None, startup_timeout=10
    )
    assert (executor.cpus, executor.pids_limit, executor.max_memory_mb, executor.tmpfs_mb) == (
        0.5,
        16,
        256,
        64,
    )
    assert executor.timeout is None and executor.startup_timeout == 10
    executor.close()
