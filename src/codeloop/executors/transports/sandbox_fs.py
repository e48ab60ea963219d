"""What the sandbox can see: the exact files a Python interpreter needs, found by reading ELF headers.

The bubblewrap sandbox starts from an empty root and gets read-only binds of only:
  - the interpreter binary and its dynamic loader;
  - the shared libraries the interpreter, the standard library's extension modules and typical manylinux wheels
    link against (the closure of their `DT_NEEDED` entries, resolved the way the loader does);
  - the standard library directory (with the base interpreter's own site-packages hidden when a virtualenv
    is in use) and the site-packages directories of the host environment;
  - paths the caller adds explicitly.
No /bin, no /usr/bin, no shell, no /etc, no /proc, no /sys, no home directory.

This module reads files on the host only; nothing in it runs inside the sandbox.
"""

from __future__ import annotations

import functools
import glob
import mmap
import os
import site
import struct
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["MountPlan", "plan_mounts", "ElfInfo", "read_elf"]

_PT_INTERP = 3
_PT_LOAD = 1
_PT_DYNAMIC = 2
_DT_NULL = 0
_DT_NEEDED = 1
_DT_STRTAB = 5
_DT_RPATH = 15
_DT_RUNPATH = 29

# Libraries the manylinux policy lets wheels use from the system (everything else is vendored into the wheel).
_MANYLINUX_SYSTEM_LIBS = (
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libc.so.6",
    "libpthread.so.0",
    "libutil.so.1",
    "libresolv.so.2",
    "libz.so.1",
)


@dataclass(frozen=True)
class ElfInfo:
    """The parts of an ELF file the loader uses to find its libraries."""

    machine: int
    elf_class: int
    interpreter: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]


def read_elf(path: str) -> ElfInfo | None:
    """Parse `path`'s ELF header and dynamic section; None if it is not a readable ELF file."""
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != b"\x7fELF":
                return None
            # Map rather than read: only the headers and the dynamic section's pages are ever touched.
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                elf_class, endian = data[4], data[5]
                if elf_class not in (1, 2) or endian not in (1, 2):
                    return None
                order = "<" if endian == 1 else ">"
                return _parse_elf(data, order, elf_class == 2, elf_class)
    except (OSError, ValueError, struct.error, IndexError, UnicodeDecodeError):
        return None


def _parse_elf(data: mmap.mmap, order: str, is64: bool, elf_class: int) -> ElfInfo:
    machine = struct.unpack_from(order + "H", data, 18)[0]
    if is64:
        phoff = struct.unpack_from(order + "Q", data, 32)[0]
        phentsize, phnum = struct.unpack_from(order + "HH", data, 54)
    else:
        phoff = struct.unpack_from(order + "I", data, 28)[0]
        phentsize, phnum = struct.unpack_from(order + "HH", data, 42)
    loads: list[tuple[int, int, int]] = []
    interpreter = None
    dynamic: tuple[int, int] | None = None
    for index in range(phnum):
        base = phoff + index * phentsize
        if is64:
            p_type, _flags, offset, vaddr, _paddr, filesz = struct.unpack_from(order + "IIQQQQ", data, base)
        else:
            p_type, offset, vaddr, _paddr, filesz = struct.unpack_from(order + "IIIII", data, base)
        if p_type == _PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif p_type == _PT_INTERP:
            interpreter = data[offset : offset + filesz].split(b"\0", 1)[0].decode()
        elif p_type == _PT_DYNAMIC:
            dynamic = (offset, filesz)
    needed_offsets: list[int] = []
    rpath_offsets: list[int] = []
    runpath_offsets: list[int] = []
    strtab_addr = None
    if dynamic is not None:
        entry = struct.Struct(order + ("qQ" if is64 else "iI"))
        start, size = dynamic
        for pos in range(start, start + size, entry.size):
            tag, value = entry.unpack_from(data, pos)
            if tag == _DT_NULL:
                break
            if tag == _DT_NEEDED:
                needed_offsets.append(value)
            elif tag == _DT_STRTAB:
                strtab_addr = value
            elif tag == _DT_RPATH:
                rpath_offsets.append(value)
            elif tag == _DT_RUNPATH:
                runpath_offsets.append(value)
    strtab = _file_offset(loads, strtab_addr) if strtab_addr is not None else None

    def strings(offsets: list[int]) -> tuple[str, ...]:
        if strtab is None:
            return ()
        result = []
        for offset in offsets:
            end = data.find(b"\0", strtab + offset)
            if end < 0:
                raise ValueError("unterminated string in ELF string table")
            result.append(data[strtab + offset : end].decode())
        return tuple(result)

    def paths(offsets: list[int]) -> tuple[str, ...]:
        return tuple(part for text in strings(offsets) for part in text.split(":") if part)

    return ElfInfo(
        machine, elf_class, interpreter, strings(needed_offsets), paths(rpath_offsets), paths(runpath_offsets)
    )


_realpath = functools.lru_cache(maxsize=8192)(os.path.realpath)


def _canonical(path: str) -> str:
    """Where a file is in the sandbox: its directory resolved (symlinked dirs are recreated as links), its own name kept."""
    return os.path.join(_realpath(os.path.dirname(path)), os.path.basename(path))


def _file_offset(loads: list[tuple[int, int, int]], address: int) -> int | None:
    for vaddr, offset, filesz in loads:
        if vaddr <= address < vaddr + filesz:
            return address - vaddr + offset
    return None


def _ld_so_conf_dirs(path: str = "/etc/ld.so.conf", depth: int = 0) -> list[str]:
    if depth > 8:
        return []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    dirs: list[str] = []
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include"):
            pattern = line.split(None, 1)[1] if " " in line or "\t" in line else ""
            if pattern and not os.path.isabs(pattern):
                pattern = os.path.join(os.path.dirname(path), pattern)
            for included in sorted(glob.glob(pattern)):
                dirs.extend(_ld_so_conf_dirs(included, depth + 1))
        elif not line.startswith("hwcap"):
            dirs.append(line)
    return dirs


def _default_lib_dirs(elf_class: int) -> list[str]:
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = []
    if multiarch:
        dirs += [f"/lib/{multiarch}", f"/usr/lib/{multiarch}"]
    if elf_class == 2:
        dirs += ["/lib64", "/usr/lib64"]
    dirs += ["/lib", "/usr/lib"]
    return dirs


class _Resolver:
    """Finds libraries the way ld.so does (RPATH, RUNPATH, ld.so.conf, trusted dirs) for one ELF flavour."""

    def __init__(self, machine: int, elf_class: int) -> None:
        self.machine = machine
        self.elf_class = elf_class
        self.default_dirs = _default_lib_dirs(elf_class)
        self.system_dirs = _ld_so_conf_dirs() + self.default_dirs
        self.found: dict[str, str] = {}  # path the loader looks up -> real file
        self.outside_default_dirs = False
        self._system_hits: dict[str, str | None] = {}

    def _expand(self, directory: str, origin: str) -> str:
        lib = "lib64" if self.elf_class == 2 else "lib"
        for token, value in (("${ORIGIN}", origin), ("$ORIGIN", origin), ("${LIB}", lib), ("$LIB", lib)):
            directory = directory.replace(token, value)
        return directory

    def resolve(self, name: str, info: ElfInfo, owner: str) -> str | None:
        if "/" in name:
            return name if os.path.exists(name) else None
        origin = os.path.dirname(_realpath(owner))
        search = [] if info.runpath else [self._expand(d, origin) for d in info.rpath]
        search += [self._expand(d, origin) for d in info.runpath]
        found = self._search(name, search)
        if found is not None:
            return found
        if name not in self._system_hits:
            self._system_hits[name] = self._search(name, self.system_dirs)
            if self._system_hits[name] is not None and not any(
                self._system_hits[name] == os.path.join(d, name) for d in self.default_dirs
            ):
                self.outside_default_dirs = True
        return self._system_hits[name]

    def _search(self, name: str, directories: list[str]) -> str | None:
        for directory in directories:
            candidate = os.path.join(directory, name)
            if not os.path.exists(candidate):
                continue
            elf = read_elf(_realpath(candidate))
            if elf is not None and (elf.machine, elf.elf_class) == (self.machine, self.elf_class):
                return candidate
        return None

    def closure(self, roots: Iterable[str]) -> None:
        pending = list(roots)
        seen: set[str] = set()
        while pending:
            path = pending.pop()
            real = _realpath(path)
            if real in seen:
                continue
            seen.add(real)
            info = read_elf(real)
            if info is None:
                continue
            for name in info.needed:
                found = self.resolve(name, info, path)
                if found is None:
                    continue
                self.found.setdefault(_canonical(found), _realpath(found))
                pending.append(found)


@dataclass
class MountPlan:
    """Read-only binds (source -> destination), directories to hide, and symlinks to recreate in the sandbox."""

    interpreter: str
    binds: dict[str, str] = field(default_factory=dict)
    hidden_dirs: list[str] = field(default_factory=list)
    symlinks: dict[str, str] = field(default_factory=dict)
    site_dirs: list[str] = field(default_factory=list)

    def bwrap_args(self) -> list[str]:
        """The bubblewrap arguments that build this view of the filesystem."""
        args: list[str] = []
        for link, target in self.symlinks.items():
            args += ["--symlink", target, link]
        for destination, source in sorted(self.binds.items()):
            args += ["--ro-bind", source, destination]
        for hidden in self.hidden_dirs:
            args += ["--tmpfs", hidden, "--remount-ro", hidden]
        return args


def _stdlib_dirs() -> list[str]:
    """The running interpreter's own stdlib and extension-module directories (never a virtualenv's)."""
    import math

    stdlib = _realpath(os.path.dirname(os.__file__))
    dirs = {stdlib}
    dynload = _realpath(os.path.dirname(getattr(math, "__file__", "") or stdlib))
    if not dynload.startswith(stdlib + os.sep) and dynload != stdlib:
        dirs.add(dynload)
    return sorted(dirs)


def host_site_dirs() -> list[str]:
    """The site-packages directories of the running environment (virtualenv-aware), existing ones only."""
    dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        dirs.append(site.getusersitepackages())
    result: list[str] = []
    for directory in dirs:
        if os.path.isdir(directory) and directory not in result:
            result.append(directory)
    return result


def plan_mounts(
    python: str | None = None,
    site_dirs: Sequence[str] | None = None,
    extra_paths: Sequence[str] = (),
) -> MountPlan:
    """Work out the read-only view of the filesystem a sandboxed `python` needs.

    `python` defaults to the running interpreter; `site_dirs` to the running environment's site-packages;
    `extra_paths` are bound read-only at the same place (data directories, extra libraries).
    """
    _realpath.cache_clear()  # resolve afresh each time: the host's files may have changed since the last plan
    interpreter = _realpath(python or sys.executable)
    info = read_elf(interpreter)
    if info is None:
        raise RuntimeError(f"{interpreter} is not an ELF executable; the sandbox needs a native CPython")
    plan = MountPlan(interpreter=interpreter)
    plan.binds[interpreter] = interpreter
    if info.interpreter:
        plan.binds[_canonical(info.interpreter)] = _realpath(info.interpreter)
    for top in ("/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(top):
            plan.symlinks[top] = os.readlink(top)
    stdlib = _stdlib_dirs()
    for directory in stdlib:
        plan.binds[directory] = directory
    sites = [_realpath(d) for d in (host_site_dirs() if site_dirs is None else site_dirs)]
    plan.site_dirs = list(dict.fromkeys(sites))
    for directory in plan.site_dirs:
        plan.binds[directory] = directory
    for directory in stdlib:
        for name in ("site-packages", "dist-packages"):
            candidate = os.path.join(directory, name)
            if os.path.isdir(candidate) and candidate not in plan.site_dirs:
                plan.hidden_dirs.append(candidate)
    resolver = _Resolver(info.machine, info.elf_class)
    roots = [interpreter]
    for directory in stdlib:
        roots += glob.glob(os.path.join(directory, "lib-dynload", "*.so")) + glob.glob(
            os.path.join(directory, "*.so")
        )
    for name in _MANYLINUX_SYSTEM_LIBS:
        found = resolver.resolve(name, info, interpreter)
        if found is not None:
            roots.append(found)
            resolver.found.setdefault(_canonical(found), _realpath(found))
    resolver.closure(roots)
    for lookup, real in resolver.found.items():
        plan.binds.setdefault(lookup, real)
    if resolver.outside_default_dirs and os.path.exists("/etc/ld.so.cache"):
        plan.binds["/etc/ld.so.cache"] = "/etc/ld.so.cache"
    zoneinfo = "/usr/share/zoneinfo"
    if os.path.isdir(zoneinfo):
        plan.binds[zoneinfo] = _realpath(zoneinfo)
    for path in extra_paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"readonly path {path!r} does not exist on the host")
        plan.binds[_canonical(os.path.abspath(path))] = _realpath(path)
    _drop_nested_binds(plan)
    return plan


def _drop_nested_binds(plan: MountPlan) -> None:
    """A bind inside an already-bound directory is redundant (and would hide nothing): drop it."""
    directories = sorted(d for d, s in plan.binds.items() if os.path.isdir(s))
    for destination in list(plan.binds):
        for directory in directories:
            if destination != directory and destination.startswith(directory.rstrip("/") + "/"):
                if plan.binds[directory] == directory and plan.binds[destination] == destination:
                    del plan.binds[destination]
                break
