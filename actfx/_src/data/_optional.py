"""Lazy imports of the optional packages behind ``actfx[data]``, with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

#: import name -> pip distribution name
_PIP_NAMES = {
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "PIL": "pillow",
    "mlxtend": "mlxtend",
}


def require(module: str, *, purpose: str, extra: str = "data") -> ModuleType:
    """Import ``module`` (e.g. ``"skimage.io"``) or raise an ImportError naming the extra.

    Args:
      module: dotted import name.
      purpose: what needs it, for the message (e.g. ``"load_digits"``).
      extra: the actfx extra that installs it.

    Raises:
      ImportError: the package is not installed; the message names the pip package and
        ``pip install "actfx[<extra>]"``.

    Example:
      >>> require("numpy", purpose="a doctest").__name__
      'numpy'
      >>> require("no_such_pkg_xyz", purpose="a doctest")
      Traceback (most recent call last):
      ...
      ImportError: a doctest needs the optional package 'no_such_pkg_xyz' (not installed);
      install it with: pip install "actfx[data]"
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        if err.name is not None and err.name.split(".")[0] != top:
            raise  # the package is there but one of *its* imports failed: show that
        pip = _PIP_NAMES.get(top, top)
        raise ImportError(
            f"{purpose} needs the optional package {pip!r} (not installed); install it "
            f'with: pip install "actfx[{extra}]"'
        ) from err
