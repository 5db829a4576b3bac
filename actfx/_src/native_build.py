"""Build and load actfx's optional compiled CPU kernels (XLA FFI handlers).

The C++ sources ship inside the package (``actfx/_src/csrc``). On first use in a process,
:func:`load` compiles one with the system C++ compiler against the *installed* jaxlib's FFI
headers (``jax.ffi.include_dir()``, so header and runtime always match), caches the shared
library, and registers its handlers with ``jax.ffi.register_ffi_target``. Nothing is
downloaded. When there is no compiler, the build fails, or ``ACTFX_NATIVE=0`` is set,
:func:`load` records why and returns ``None``; callers then use their pure-JAX path.

Cache: ``$ACTFX_CACHE_DIR``, else ``$XDG_CACHE_HOME/actfx``, else ``~/.cache/actfx``
(falling back to the temp directory when that is not writable). The file name hashes the
source, compiler, flags, jaxlib version and CPU (the build uses ``-march=native``), so a
changed source or machine builds afresh. Each build is recorded in a JSON sidecar
(``<key>.json``: the library's file name, size and SHA-256), written after the library and
both renamed into place atomically, so concurrent processes (pytest-xdist) never see a
half-written one. A cached library is loaded only if its size and hash match the record:
a truncated, modified or unrecorded file (loaded as is, it crashed the process with
SIGBUS/SIGSEGV) is rebuilt. The verified bytes are loaded from a private copy (unlinked
once loaded), so a later change to the cache cannot reach a running process. Any failure
(no compiler, a compiler that exits 0 without writing the library, a library that does not
load) makes :func:`load` return ``None`` with the reason in :func:`reason`.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import jax

_FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno", "-fno-trapping-math", "-w")
_lock = threading.Lock()
_loaded: dict[str, NativeLibrary | str] = {}  # source name -> library, or why not


@dataclass(frozen=True)
class NativeLibrary:
    """A built and registered kernel library: its path and registered FFI target names."""

    path: str
    targets: tuple[str, ...]


def _cache_dir() -> Path:
    root = os.environ.get("ACTFX_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "actfx")
    path = Path(root) / "native"
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    uid = os.getuid() if hasattr(os, "getuid") else 0
    path = Path(tempfile.gettempdir()) / f"actfx-native-{uid}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cpu_fingerprint() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor()


def _compiler() -> str | None:
    cxx = os.environ.get("CXX")
    if cxx:
        return shutil.which(cxx) or cxx
    for name in ("c++", "g++", "clang++"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _digest(data: bytes) -> dict[str, int | str]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a unique temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cached(record: Path) -> tuple[Path, bytes] | str | None:
    """The library ``record`` describes and its bytes if they match its size and hash; the
    reason if not; ``None`` if there is no record."""
    try:
        meta = json.loads(record.read_text())
        lib = record.with_name(meta["file"])
        if lib.parent != record.parent or not lib.name.endswith(".so"):
            return f"{record}: bad library name {meta['file']!r}"
        data = lib.read_bytes()
    except FileNotFoundError as e:
        return None if e.filename == str(record) else f"{record}: {e}"
    except (OSError, ValueError, TypeError, KeyError) as e:
        return f"{record}: unreadable record ({type(e).__name__}: {e})"
    got = _digest(data)
    if got != {"size": meta.get("size"), "sha256": meta.get("sha256")}:
        return (
            f"{lib} does not match its record (size {got['size']}, recorded "
            f"{meta.get('size')}, or a different SHA-256): damaged, rebuilt"
        )
    return lib, data


def _compile(cxx: str, source: Path, record: Path, flags: tuple[str, ...]):
    """Compile ``source`` and record it under ``record``: ``(library, bytes)``, or the reason
    it failed. The library is written under a name with its own hash, then the record
    pointing to it: a reader sees an old complete pair or the new complete pair."""
    tmp = record.with_name(f".{record.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    cmd = [cxx, *flags, f"-I{jax.ffi.include_dir()}", str(source), "-o", str(tmp)]
    try:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"{' '.join(cmd)}: {e}"
        if proc.returncode != 0:
            return f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        try:
            data = tmp.read_bytes()
        except FileNotFoundError:
            return f"{' '.join(cmd)} exited 0 but wrote no library"
        if not data:
            return f"{' '.join(cmd)} exited 0 but wrote an empty library"
        meta = _digest(data)
        lib = record.with_name(f"{record.stem}-{str(meta['sha256'])[:16]}.so")
        os.replace(tmp, lib)
        _write_atomic(record, json.dumps({"file": lib.name, **meta}).encode())
        return lib, data
    except OSError as e:
        return f"writing the build of {source.name} to {record.parent} failed: {e}"
    finally:
        tmp.unlink(missing_ok=True)


def _build(name: str) -> tuple[Path, bytes] | str:
    """The compiled library for ``csrc/<name>`` and its verified bytes, or the reason it
    could not be built."""
    switch = os.environ.get("ACTFX_NATIVE", "1")
    if switch.strip().lower() in ("0", "false", "no", "off"):
        return f"disabled by ACTFX_NATIVE={switch}"
    cxx = _compiler()
    if cxx is None:
        return "no C++ compiler found (set CXX, or install g++/clang++)"
    src = importlib.resources.files("actfx._src") / "csrc" / name
    if not src.is_file():
        return f"kernel source {name} is missing from the installed package"
    source = Path(str(src))
    text = source.read_bytes()
    try:
        version = subprocess.run(
            [cxx, "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{cxx} --version failed: {e}"
    flag_sets = [(*_FLAGS, "-march=native"), _FLAGS]  # some compilers lack -march=native
    key = hashlib.sha256()
    jaxlib_version = importlib.metadata.version("jaxlib")
    for part in (text, cxx.encode(), version.encode(), jaxlib_version.encode()):
        key.update(part)
    key.update(jax.ffi.include_dir().encode())
    key.update(platform.machine().encode() + _cpu_fingerprint().encode())
    stem = f"{Path(name).stem}-{key.hexdigest()[:16]}"
    cache = _cache_dir()
    records = [cache / f"{stem}-{i}.json" for i in range(len(flag_sets))]
    damaged = []
    for record in records:  # a cached build with either flag set (no retry of a failed -march)
        found = _cached(record)
        if isinstance(found, tuple):
            return found
        if found is not None:
            damaged.append(found)
    errors = []
    for record, flags in zip(records, flag_sets):
        built = _compile(cxx, source, record, flags)
        if isinstance(built, tuple):
            return built
        errors.append(built)
    return "build failed: " + " | ".join(damaged + errors)


def load(name: str, targets: dict[str, str]) -> NativeLibrary | None:
    """Build (once per process) ``csrc/<name>`` and register ``targets`` (FFI target name ->
    exported handler symbol) on the CPU platform; ``None`` if unavailable (see
    :func:`reason`)."""
    with _lock:
        if name not in _loaded:
            _loaded[name] = _load(name, targets)
        lib = _loaded[name]
    return lib if isinstance(lib, NativeLibrary) else None


def reason(name: str) -> str | None:
    """Why ``csrc/<name>`` is not available (``None`` if it is, or was never requested)."""
    lib = _loaded.get(name)
    return lib if isinstance(lib, str) else None


def _load(name: str, targets: dict[str, str]) -> NativeLibrary | str:
    try:
        built = _build(name)
        if isinstance(built, str):
            return built
        path, data = built
        # dlopen a private copy of the verified bytes: the cache file may be replaced,
        # truncated or modified later without reaching this process (a mapped library
        # that shrinks is a SIGBUS)
        fd, private = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".so")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            lib = ctypes.CDLL(private)
        finally:
            Path(private).unlink(missing_ok=True)
        for target, symbol in targets.items():
            capsule = jax.ffi.pycapsule(getattr(lib, symbol))
            jax.ffi.register_ffi_target(target, capsule, platform="cpu")
    except Exception as e:  # any failure falls back to the pure-JAX path, with the reason
        return f"loading the {name} kernel failed: {type(e).__name__}: {e}"
    return NativeLibrary(str(path), tuple(targets))
