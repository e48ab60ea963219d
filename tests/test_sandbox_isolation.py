"""What sandboxed code can and cannot reach: files, environment, network, processes, kernel interfaces.

Plus the reduced-isolation fallback (a plain subprocess) and how `require_isolation` refuses to run without
bubblewrap. Every check runs code in a real worker and inspects what it could do.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import warnings
from collections.abc import Iterator

import pytest
from tests.sandbox_support import needs_bwrap

from codeloop.errors import ExecutionError, SandboxUnavailableError
from codeloop.executors import SandboxExecutor
from codeloop.executors.transports import sandbox as sandbox_module
from codeloop.executors.transports.sandbox_fs import plan_mounts, read_elf


@pytest.fixture(scope="module")
def isolated() -> Iterator[SandboxExecutor]:
    os.environ["CODELOOP_TEST_HOST_SECRET"] = "host-secret-value"
    try:
        with SandboxExecutor(require_isolation=True, timeout=20) as executor:
            executor.run("1")  # started while the host environment holds the secret
            yield executor
    finally:
        del os.environ["CODELOOP_TEST_HOST_SECRET"]


def probe(executor: SandboxExecutor, code: str) -> object:
    return executor.run(code).output


@needs_bwrap
def test_no_shell_and_no_system_binaries_are_reachable(isolated: SandboxExecutor) -> None:
    found = probe(
        isolated,
        "import os, shutil\n"
        "[shutil.which(name, path='/bin:/usr/bin:/sbin:/usr/sbin:/usr/local/bin') for name in "
        "('sh', 'bash', 'dash', 'busybox', 'env', 'python3')] + [os.path.exists(p) for p in "
        "('/bin', '/usr/bin', '/sbin', '/etc', '/home', '/proc', '/sys', '/root/.bashrc')]",
    )
    assert found == [None] * 6 + [False] * 8
    assert probe(isolated, "import os\nos.system('echo SHELL-ESCAPE-$((6*7))')") != 0


@needs_bwrap
def test_nothing_but_the_interpreter_is_executable(isolated: SandboxExecutor) -> None:
    code = (
        "import os, stat\n"
        "found = []\n"
        "for top in ('/usr', '/lib', '/lib64', '/root', '/work', '/tmp', '/sandbox'):\n"
        "    for root, dirs, files in os.walk(top):\n"
        "        if 'site-packages' in root:\n"
        "            dirs.clear()\n"
        "        for name in files:\n"
        "            path = os.path.join(root, name)\n"
        "            try:\n"
        "                st = os.stat(path)\n"
        "            except OSError:\n"
        "                continue\n"
        "            if st.st_mode & 0o111 and not name.endswith(('.so',)) and '.so.' not in name:\n"
        "                with open(path, 'rb') as f:\n"
        "                    head = f.read(4)\n"
        "                if head == b'\\x7fELF' or head[:2] == b'#!':\n"
        "                    found.append(path)\n"
        "found"
    )
    executables = probe(isolated, code)
    assert isinstance(executables, list)
    interpreter = os.path.realpath(sys.executable)
    # Shell scripts are shipped with the standard library (e.g. config-3.x/install-sh) but no shell can run them.
    assert [p for p in executables if not open_is_script(p)] == [interpreter]


def open_is_script(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"#!"


@needs_bwrap
def test_host_files_and_the_canary_directory_are_invisible(
    isolated: SandboxExecutor, tmp_path: object
) -> None:
    secret = os.path.join(str(tmp_path), "secret.txt")
    with open(secret, "w") as handle:
        handle.write("host file content")
    code = f"import os\n[os.path.exists(p) for p in ({secret!r}, '/tmp/canary', '/etc/passwd', {__file__!r})]"
    assert probe(isolated, code) == [False, False, False, False]


@needs_bwrap
def test_only_the_protocol_pipes_are_open(isolated: SandboxExecutor) -> None:
    code = "import os, stat\nopen_fds = []\nfor fd in range(1024):\n    try:\n        mode = os.fstat(fd).st_mode\n    except OSError:\n        continue\n    open_fds.append((fd, stat.S_ISFIFO(mode)))\nopen_fds"
    # stdin/stdout/stderr pipes and the worker's private copy of the protocol pipe: no host file or socket leaks in
    assert probe(isolated, code) == [(0, True), (1, True), (2, True), (3, True)]


@needs_bwrap
def test_environment_is_cleared(isolated: SandboxExecutor) -> None:
    environment = probe(isolated, "import os\ndict(os.environ)")
    assert isinstance(environment, dict) and "CODELOOP_TEST_HOST_SECRET" not in environment
    assert set(environment) <= {"HOME", "TMPDIR", "LANG", "USER", "LOGNAME", "PWD", "MALLOC_ARENA_MAX"}


@needs_bwrap
def test_no_network_not_even_the_hosts_loopback(isolated: SandboxExecutor) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    code = (
        "import socket\nresults = []\n"
        f"for target in (('127.0.0.1', {port}), ('1.1.1.1', 53)):\n"
        "    try:\n        socket.create_connection(target, timeout=1)\n        results.append('connected')\n"
        "    except OSError as err:\n        results.append(type(err).__name__)\n"
        "try:\n    socket.getaddrinfo('example.com', 80)\n    results.append('resolved')\n"
        "except OSError as err:\n    results.append('no dns')\nresults"
    )
    results = probe(isolated, code)
    thread.join()
    server.close()
    assert (
        accepted == []
        and isinstance(results, list)
        and "connected" not in results
        and "resolved" not in results
    )


@needs_bwrap
def test_unprivileged_uid_and_no_way_to_gain_privileges(isolated: SandboxExecutor) -> None:
    code = (
        "import os\nresult = [os.getuid(), os.geteuid()]\n"
        "for attempt in (lambda: os.setuid(0), lambda: os.chroot('/tmp'), lambda: os.mknod('/tmp/null2', 0o20666, os.makedev(1, 3))):\n"
        "    try:\n        attempt()\n        result.append('allowed')\n    except OSError as err:\n        result.append(type(err).__name__)\n"
        "result"
    )
    uid, euid, *attempts = probe(isolated, code)  # type: ignore[misc]
    assert (uid, euid) == (65534, 65534) and "allowed" not in attempts


@needs_bwrap
def test_the_filesystem_is_read_only_except_a_bounded_tmpfs() -> None:
    with SandboxExecutor(require_isolation=True, tmpfs_mb=8, timeout=20) as executor:
        site = sys.path[-1]
        code = (
            "import os\nresults = {}\n"
            f"for path in ('/usr/x', '/x', {os.path.realpath(sys.executable) + '.x'!r}, '/dev/x', '/sandbox/ok', '/tmp/ok'):\n"
            "    try:\n        open(path, 'w').write('x')\n        results[path] = 'written'\n"
            "    except OSError as err:\n        results[path] = type(err).__name__\n"
            "try:\n    with open('/tmp/big', 'wb') as f:\n        f.write(b'x' * (32 * 1024 * 1024))\n    results['big'] = 'written'\n"
            "except OSError as err:\n    results['big'] = type(err).__name__\n"
            "(results, os.getcwd())"
        )
        results, cwd = probe(executor, code)  # type: ignore[misc]
    assert site  # the host has a site directory to compare with
    assert results.pop("/sandbox/ok") == results.pop("/tmp/ok") == "written"
    assert results.pop("big") != "written"
    assert "written" not in results.values() and cwd == "/sandbox"


@needs_bwrap
def test_no_processes_no_programs_no_namespaces_no_vsock(isolated: SandboxExecutor) -> None:
    code = (
        "import os, socket, subprocess, sys, ctypes\nresult = {}\n"
        "def attempt(name, action):\n"
        "    try:\n        action()\n        result[name] = 'allowed'\n"
        "    except OSError as err:\n        result[name] = err.errno\n"
        "attempt('fork', os.fork)\n"
        "attempt('spawn', lambda: subprocess.run([sys.executable, '-c', '1']))\n"
        "attempt('exec', lambda: os.execv(sys.executable, [sys.executable, '-c', '1']))\n"
        "attempt('vsock', lambda: socket.socket(40, socket.SOCK_STREAM))\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "result['unshare'] = libc.unshare(0x10000000) == 0\n"
        "result['mount'] = libc.mount(b'proc', b'/tmp', b'proc', 0, None) == 0\n"
        "import threading\nt = threading.Thread(target=lambda: None)\nt.start()\nt.join()\nresult['thread'] = 'ok'\n"
        "result"
    )
    result = probe(isolated, code)
    assert result == {
        "fork": 1,
        "spawn": 1,
        "exec": 1,
        "vsock": 1,
        "unshare": False,
        "mount": False,
        "thread": "ok",
    }
    assert isolated.seccomp_active and isolated.isolation == "bubblewrap"


@needs_bwrap
def test_the_environments_packages_are_importable_and_the_base_site_packages_hidden(
    isolated: SandboxExecutor,
) -> None:
    import pydantic

    version = probe(isolated, "import pydantic\npydantic.VERSION")
    assert version == pydantic.VERSION
    if sys.prefix != sys.base_prefix:
        base_site = os.path.join(os.path.dirname(os.__file__), "site-packages")
        assert probe(isolated, f"import os\nos.listdir({base_site!r})") == []


def test_mount_plan_binds_the_interpreter_and_its_libraries_but_no_binary_directories() -> None:
    plan = plan_mounts()
    interpreter = os.path.realpath(sys.executable)
    assert plan.binds[interpreter] == interpreter
    assert any(os.path.basename(dest).startswith("libc.so") for dest in plan.binds)
    for forbidden in ("/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin", "/etc", "/home", "/root"):
        assert forbidden not in plan.binds
    for dest, source in plan.binds.items():
        if (
            os.path.isfile(source)
            and read_elf(source) is not None
            and not dest.endswith(".so")
            and ".so." not in dest
        ):
            assert source in (interpreter,) or "ld-linux" in dest or "ld-" in os.path.basename(dest), dest


def test_read_elf_finds_the_interpreters_libraries() -> None:
    info = read_elf(os.path.realpath(sys.executable))
    assert info is not None and info.interpreter and any(name.startswith("lib") for name in info.needed)
    assert read_elf(__file__) is None


# --- without bubblewrap -----------------------------------------------------------------------------------------


@pytest.fixture
def fresh_warning_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_module, "_fallback_warned", False)


def test_forced_fallback_runs_code_with_limits_and_a_cleared_environment(fresh_warning_state: None) -> None:
    os.environ["CODELOOP_FALLBACK_SECRET"] = "x"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # asked for explicitly: nothing to warn about
            executor = SandboxExecutor(
                isolation="subprocess", timeout=3
            )  # room for the steps that must finish
            try:
                assert executor.isolation == "subprocess"
                assert executor.run("x = 2\nx * 21").output == 42
                with pytest.raises(ExecutionError, match="time limit"):
                    executor.run("while True: pass")
                code = "import os\ntry:\n    os.fork()\n    r = 'forked'\nexcept OSError as err:\n    r = err.errno\n(r, 'CODELOOP_FALLBACK_SECRET' in os.environ)"
                assert executor.run(code).output == (1, False)
                assert executor.seccomp_active
            finally:
                executor.close()
    finally:
        del os.environ["CODELOOP_FALLBACK_SECRET"]


def test_require_isolation_without_bubblewrap_raises_and_says_how_to_fix() -> None:
    with pytest.raises(SandboxUnavailableError) as caught:
        SandboxExecutor(require_isolation=True, bwrap="/nonexistent/bwrap-missing")
    assert "bubblewrap" in str(caught.value) and "apt-get install bubblewrap" in str(caught.value)


def test_missing_bubblewrap_falls_back_with_a_warning_given_once(fresh_warning_state: None) -> None:
    with pytest.warns(RuntimeWarning, match="isolation is reduced: bubblewrap \\(bwrap\\) is not installed"):
        with SandboxExecutor(bwrap="/nonexistent/bwrap-missing") as executor:
            assert executor.isolation == "subprocess" and executor.run("6 * 7").output == 42
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with SandboxExecutor(bwrap="/nonexistent/bwrap-missing") as executor:
            assert executor.run("1").output == 1


def test_contradictory_or_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="contradicts"):
        SandboxExecutor(isolation="subprocess", require_isolation=True)
    with pytest.raises(ValueError, match="isolation must be"):
        SandboxExecutor(isolation="docker")
    with pytest.raises(ValueError, match="max_memory_mb"):
        SandboxExecutor(max_memory_mb=0)
    with pytest.raises(FileNotFoundError, match="readonly_paths"):
        SandboxExecutor(readonly_paths=["/no/such/dir"])


@pytest.fixture
def failing_bwrap(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> str:
    """A stand-in `bwrap` that fails the way bubblewrap does when user namespaces are not allowed."""
    path = os.path.join(str(tmp_path), "bwrap")
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    os.chmod(path, 0o755)
    monkeypatch.setattr(sandbox_module, "_bwrap_problem", None)
    monkeypatch.setattr(sandbox_module, "_fallback_warned", False)
    return path


def test_bubblewrap_that_cannot_create_namespaces_is_refused_when_isolation_is_required(
    failing_bwrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox_module, "_bwrap_worked", False)
    with pytest.raises(SandboxUnavailableError, match="setting up uid map: Permission denied"):
        SandboxExecutor(bwrap=failing_bwrap, require_isolation=True).run("1")


def test_bubblewrap_that_never_worked_falls_back_with_its_error_in_the_warning(
    failing_bwrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox_module, "_bwrap_worked", False)
    with pytest.warns(RuntimeWarning, match="setting up uid map"):
        with SandboxExecutor(bwrap=failing_bwrap) as executor:
            assert executor.run("40 + 2").output == 42 and executor.isolation == "subprocess"


def test_a_bubblewrap_failure_after_it_has_worked_does_not_lower_isolation(
    failing_bwrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox_module, "_bwrap_worked", True)
    with pytest.raises(SandboxUnavailableError, match="could not start"):
        SandboxExecutor(bwrap=failing_bwrap).run("1")
    assert sandbox_module._bwrap_problem is None
