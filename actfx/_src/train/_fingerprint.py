"""A JSON description of a run (config, loss, optimizer) stored with its checkpoints, so a
rerun with other settings is refused instead of silently resuming a different run.

Everything is described *by value*: numbers exactly, arrays by a SHA-256 of their bytes,
functions by their code (a digest of the bytecode and constants), the values their closure
cells hold, their defaults and, for functions outside the libraries (:data:`LIBRARIES`),
the module globals they read; objects by their type and attributes. There is no depth
limit (cycles are cut and marked); what cannot be described is listed under
``"undescribable"`` and a resume is then refused instead of guessing.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import math
import sys
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# top-level packages whose functions are named (module.qualname + closure values) rather
# than described by bytecode: their code is fixed by the installed version, and following
# their globals would describe the library itself
LIBRARIES = frozenset(
    {
        "actfx",
        "builtins",
        "chex",
        "collections",
        "flax",
        "functools",
        "jax",
        "jaxlib",
        "math",
        "numpy",
        "operator",
        "optax",
        "typing",
    }
)

# more nodes than this in one description: refuse (a closure holding a huge object graph)
_BUDGET = 200_000


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None) or '?'}.{getattr(obj, '__qualname__', '?')}"


def _is_library(obj: Any) -> bool:
    return (getattr(obj, "__module__", None) or "").split(".")[0] in LIBRARIES


def _const(c: Any) -> str:
    """A deterministic text for a code constant (sets sorted: their order varies per run)."""
    if isinstance(c, types.CodeType):
        return "code:" + _code_digest(c)
    if isinstance(c, (tuple, list)):
        return f"{type(c).__name__}(" + ",".join(_const(x) for x in c) + ")"
    if isinstance(c, (set, frozenset)):
        return f"{type(c).__name__}(" + ",".join(sorted(_const(x) for x in c)) + ")"
    return f"{type(c).__name__}:{c!r}"


def _code_digest(co: types.CodeType) -> str:
    """SHA-256 of a code object's bytecode, constants, names and signature (not its line
    numbers: moving a function in its file does not change it; Python versions do)."""
    h = hashlib.sha256()
    for part in (
        co.co_code,
        getattr(co, "co_exceptiontable", b""),
        repr((co.co_argcount, co.co_kwonlyargcount, co.co_posonlyargcount, co.co_flags)),
        repr((co.co_names, co.co_varnames, co.co_freevars, co.co_cellvars)),
        _const(co.co_consts),
    ):
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _global_names(co: types.CodeType) -> set[str]:
    names = set(co.co_names)
    for c in co.co_consts:
        if isinstance(c, types.CodeType):
            names |= _global_names(c)
    return names


def _array(obj: Any) -> dict[str, Any]:
    if isinstance(obj, jax.Array) and jnp.issubdtype(obj.dtype, jax.dtypes.prng_key):
        obj = jax.random.key_data(obj)
    a = np.ascontiguousarray(np.asarray(jax.device_get(obj)))
    return {
        "array": list(a.shape),
        "dtype": str(a.dtype),
        "sha256": hashlib.sha256(a.tobytes()).hexdigest(),
    }


def _sort_key(d: Any) -> str:
    return json.dumps(d, sort_keys=True)


class _Describer:
    def __init__(self) -> None:
        self.active: set[int] = set()  # ids of the objects on the current path (cycles)
        self.nodes = 0
        self.undescribable: list[str] = []

    def unknown(self, path: str, why: str) -> dict[str, str]:
        self.undescribable.append(f"{path}: {why}")
        return {"undescribable": why}

    def __call__(self, obj: Any, path: str) -> Any:
        self.nodes += 1
        if self.nodes > _BUDGET:
            if self.nodes == _BUDGET + 1:
                return self.unknown(path, f"more than {_BUDGET} objects to describe")
            return {"undescribable": "budget"}
        if obj is None or type(obj) in (bool, int, str):
            return obj
        if type(obj) is float:
            return obj if math.isfinite(obj) else repr(obj)
        if type(obj) is complex:
            return {"complex": [self(obj.real, path), self(obj.imag, path)]}
        if isinstance(obj, (bytes, bytearray)):
            return {"bytes": hashlib.sha256(bytes(obj)).hexdigest()}
        if isinstance(obj, enum.Enum):
            return {"enum": f"{_qualname(type(obj))}.{obj.name}"}
        if isinstance(obj, np.dtype):
            return {"dtype": str(obj)}
        if isinstance(obj, types.ModuleType):
            return {"module": obj.__name__}
        if isinstance(obj, (np.ndarray, np.generic, jax.Array)):
            return _array(obj)
        if isinstance(obj, types.CodeType):
            return {"code": _code_digest(obj)}
        if id(obj) in self.active:
            return {"cycle": _qualname(type(obj))}
        self.active.add(id(obj))
        try:
            return self._compound(obj, path)
        finally:
            self.active.discard(id(obj))

    def _compound(self, obj: Any, path: str) -> Any:
        if isinstance(obj, type):
            return self._class(obj, path)
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # NamedTuple (optax's too)
            names: tuple[str, ...] = type(obj)._fields  # pyright: ignore[reportAttributeAccessIssue]
            fields = {f: self(getattr(obj, f), f"{path}.{f}") for f in names}
            return {"namedtuple": _qualname(type(obj)), "fields": fields}
        if type(obj) in (tuple, list):
            return [self(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, jax.tree_util.PyTreeDef):
            return {"treedef": str(obj)}
        if isinstance(obj, (dict, types.MappingProxyType)):
            items = [[self(k, f"{path}.key"), self(v, f"{path}[{k!r}]")] for k, v in obj.items()]
            out: dict[str, Any] = {"dict": sorted(items, key=lambda kv: _sort_key(kv[0]))}
            if type(obj) is not dict:  # OrderedDict, defaultdict, mappingproxy
                out["type"] = _qualname(type(obj))
            return out
        if isinstance(obj, (set, frozenset)):
            return {"set": sorted((self(v, f"{path}.item") for v in obj), key=_sort_key)}
        if isinstance(obj, functools.partial):
            return {
                "partial": self(obj.func, f"{path}.func"),
                "args": self(list(obj.args), f"{path}.args"),
                "keywords": self(dict(obj.keywords), f"{path}.keywords"),
            }
        if isinstance(obj, types.MethodType):
            return {
                "method": self(obj.__func__, f"{path}.__func__"),
                "self": self(obj.__self__, f"{path}.__self__"),
            }
        if isinstance(obj, types.FunctionType):
            return self._function(obj, path)
        if isinstance(obj, (types.BuiltinFunctionType, np.ufunc)):
            owner = getattr(obj, "__self__", None)
            out = {"builtin": _qualname(obj) if hasattr(obj, "__qualname__") else repr(obj)}
            if owner is not None and not isinstance(owner, types.ModuleType):
                out["self"] = self(owner, f"{path}.__self__")
            return out
        wrapped = getattr(obj, "__wrapped__", None)  # jax.jit, custom_jvp, functools.wraps
        if wrapped is not None and wrapped is not obj:
            out = {"wrapper": _qualname(type(obj)), "wrapped": self(wrapped, f"{path}.__wrapped__")}
            if not _is_library(type(obj)):  # a library wrapper (jax.jit) adds no behaviour
                state = self._state(obj, path)
                if state is not None:
                    out["state"] = state
            return out
        state = self._state(obj, path)
        if state is None:
            return self.unknown(path, f"a {_qualname(type(obj))} (no attributes to compare)")
        return {"object": self(type(obj), f"{path}.__class__"), "state": state}

    def _state(self, obj: Any, path: str) -> Any:
        """An object's attributes (dataclass fields, ``__dict__`` and ``__slots__``)."""
        if dataclasses.is_dataclass(obj):
            names = [f.name for f in dataclasses.fields(obj)]
        else:
            names = sorted(getattr(obj, "__dict__", {}) or {})
            for cls in type(obj).__mro__:
                slots = cls.__dict__.get("__slots__", ())
                names += sorted([slots] if isinstance(slots, str) else slots)
            if not names and not hasattr(obj, "__dict__"):
                return None
        out = {}
        for name in dict.fromkeys(names):
            if name in ("__dict__", "__weakref__") or not hasattr(obj, name):
                continue
            out[name] = self(getattr(obj, name), f"{path}.{name}")
        return out

    def _class(self, cls: type, path: str) -> Any:
        out: dict[str, Any] = {"type": _qualname(cls)}
        if _is_library(cls) or cls.__module__ == "builtins":
            return out
        # a user class: its own methods by code (a callable dataclass's __call__, helpers)
        methods = {}
        for name, v in sorted(vars(cls).items()):
            fn = v.__func__ if isinstance(v, (staticmethod, classmethod)) else v
            if isinstance(fn, types.FunctionType):
                methods[name] = self(fn, f"{path}.{name}")
        if methods:
            out["methods"] = methods
        bases = [b for b in cls.__bases__ if b is not object]
        if bases:
            out["bases"] = [self(b, f"{path}.__base__") for b in bases]
        return out

    def _function(self, fn: types.FunctionType, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {"fn": _qualname(fn)}
        library = _is_library(fn)
        if not library:
            out["code"] = _code_digest(fn.__code__)
        cells = fn.__closure__ or ()
        closure = {}
        for name, cell in zip(fn.__code__.co_freevars, cells):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                closure[name] = {"empty_cell": True}
                continue
            closure[name] = self(value, f"{path}.<closure {name}>")
        if closure:
            out["closure"] = closure
        if fn.__defaults__:
            out["defaults"] = self(list(fn.__defaults__), f"{path}.__defaults__")
        if fn.__kwdefaults__:
            out["kwdefaults"] = self(dict(fn.__kwdefaults__), f"{path}.__kwdefaults__")
        if not library:
            glob = {}
            for name in sorted(_global_names(fn.__code__)):
                if name in fn.__globals__:
                    glob[name] = self(fn.__globals__[name], f"{path}.<global {name}>")
            if glob:
                out["globals"] = glob
        return out


def describe(obj: Any, path: str = "obj") -> Any:
    """A JSON description of a callable, optax transformation or value, by value.

    Numbers exactly, arrays by shape, dtype and a SHA-256 of their bytes, functions by a
    digest of their code plus their closure cells, defaults and (outside the
    :data:`LIBRARIES`) the globals they read, objects by type and attributes, all
    recursively without a depth limit. So ``optax.adam(1e-3)`` and ``optax.adam(1e-2)``
    differ, as do ``optax.chain(clip, adam(1e-3))`` and ``chain(clip, adam(2e-3))``, two
    learning-rate arrays with other values, and two versions of a loss edited under one
    name, while two separately built ``optax.adam(1e-3)`` agree. Parts that cannot be
    described are marked ``{"undescribable": why}``; :func:`undescribable` lists them.

    Example:
      >>> import optax
      >>> describe(optax.adam(1e-3)) == describe(optax.adam(1e-3))
      True
      >>> describe(optax.adam(1e-3)) == describe(optax.adam(1e-2))
      False
    """
    return _Describer()(obj, path)


def undescribable(obj: Any, path: str = "obj") -> list[str]:
    """The parts of ``obj`` that :func:`describe` cannot describe by value (``path: why``)."""
    d = _Describer()
    d(obj, path)
    return d.undescribable


def data_digest(x, y, max_examples: int = 1024) -> dict[str, Any]:
    """Shapes, dtypes and a SHA-256 of up to ``max_examples`` evenly strided examples."""
    n = len(x)
    idx = np.unique(np.linspace(0, n - 1, min(n, max_examples)).astype(np.int64))
    h = hashlib.sha256()
    for a in (np.asarray(x[idx]), np.asarray(y[idx])):
        h.update(np.ascontiguousarray(a).tobytes())
    return {
        "x": [list(np.shape(x)), str(np.asarray(x[:1]).dtype)],
        "y": [list(np.shape(y)), str(np.asarray(y[:1]).dtype)],
        "sha256": h.hexdigest(),
    }


def run_fingerprint(config, loss_fn, optimizer, train, tx=None) -> dict[str, Any]:
    """``{"config", "loss_fn", "optimizer", "train", "python", "undescribable"}`` of a run.

    ``tx`` is the transformation an optimizer *factory* returned (described too: the
    factory's code and what it built). ``undescribable`` lists what could not be described
    by value; :func:`actfx.train.fit` refuses to resume such a run unless told to.
    """
    d = _Describer()
    out: dict[str, Any] = {
        "config": config.trajectory(),
        "loss_fn": "default" if loss_fn is None else d(loss_fn, "loss_fn"),
        "optimizer": "recipe" if optimizer is None else d(optimizer, "optimizer"),
        "train": data_digest(*train),
        # functions are compared by bytecode, which each Python minor version changes
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
    }
    if tx is not None and tx is not optimizer and optimizer is not None:
        out["optimizer_built"] = d(tx, "optimizer(schedule)")
    out["undescribable"] = d.undescribable
    return out


def _first_diffs(a: Any, b: Any, path: str, out: list[str], limit: int = 3) -> None:
    if len(out) >= limit or a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            _first_diffs(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{path}.{k}", out, limit)
        return
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (u, v) in enumerate(zip(a, b)):
            _first_diffs(u, v, f"{path}[{i}]", out, limit)
        return
    show = [json.dumps(v)[:80] for v in (a, b)]
    out.append(f"{path}: {show[0]} in the checkpoint, {show[1]} now")


def fingerprint_diff(saved: dict, now: dict) -> list[str]:
    """Human-readable differences between two :func:`run_fingerprint` records."""
    if "python" not in saved:
        return [
            "the checkpoint was written by an older actfx, whose description of the loss and "
            "optimizer (by name and shape) cannot be compared with this one (by value)"
        ]
    diffs = []
    saved_cfg, now_cfg = saved.get("config", {}), now.get("config", {})
    for k in sorted(set(saved_cfg) | set(now_cfg)):
        if saved_cfg.get(k) != now_cfg.get(k):
            diffs.append(f"{k}: {saved_cfg.get(k)!r} in the checkpoint, {now_cfg.get(k)!r} now")
    for k in ("loss_fn", "optimizer", "optimizer_built"):
        if saved.get(k) != now.get(k):
            where: list[str] = []
            _first_diffs(saved.get(k), now.get(k), k, where)
            diffs.append(
                f"{k} differs from the one the checkpoint was written with ("
                + "; ".join(where)
                + ")"
            )
    if saved.get("train") != now.get("train"):
        diffs.append("the train data differ from the checkpoint's (shape, dtype or values)")
    if saved.get("python") != now.get("python"):
        diffs.append(
            f"python: {saved.get('python')!r} in the checkpoint, {now.get('python')!r} now "
            "(functions are compared by bytecode)"
        )
    known = ("config", "loss_fn", "optimizer", "optimizer_built", "train", "python")
    for k in sorted(set(saved) | set(now)):
        if k not in known + ("undescribable",) and saved.get(k) != now.get(k):
            diffs.append(f"{k} differs from the checkpoint's")
    if not diffs and saved != now:
        diffs.append("the run record differs from the checkpoint's (written by another actfx?)")
    return diffs
