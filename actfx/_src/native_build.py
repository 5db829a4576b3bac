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
changed source or machine builds afresh; builds write a temporary file and rename it, so
concurrent processes (pytest-xdist) never load a half-written library.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import importlib.resources
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


def _compile(cxx: str, source: Path, out: Path, flags: tuple[str, ...]) -> str | None:
    """Compile ``source`` to ``out`` (atomically); the compiler's error text or ``None``."""
    tmp = out.with_name(f"{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    cmd = [cxx, *flags, f"-I{jax.ffi.include_dir()}", str(source), "-o", str(tmp)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{' '.join(cmd)}: {e}"
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        return f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
    os.replace(tmp, out)
    return None


def _build(name: str) -> Path | str:
    """Path of the compiled library for ``csrc/<name>``, or the reason it could not be built."""
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
    outs = [cache / f"{stem}-{i}.so" for i in range(len(flag_sets))]
    for out in outs:  # a cached build with either flag set (no retry of a failed -march)
        if out.exists():
            return out
    errors = []
    for out, flags in zip(outs, flag_sets):
        err = _compile(cxx, source, out, flags)
        if err is None:
            return out
        errors.append(err)
    return "build failed: " + " | ".join(errors)


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
    path = _build(name)
    if isinstance(path, str):
        return path
    try:
        lib = ctypes.CDLL(str(path))
        for target, symbol in targets.items():
            capsule = jax.ffi.pycapsule(getattr(lib, symbol))
            jax.ffi.register_ffi_target(target, capsule, platform="cpu")
    except (OSError, AttributeError) as e:
        return f"loading {path} failed: {e}"
    return NativeLibrary(str(path), tuple(targets))
