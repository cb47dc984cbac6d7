"""Functions of the C library the interpreter runs on, looked up once by name (ctypes).

None where the C library lacks one (musl, macOS): callers then do without."""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def libc_function(name: str, *argtypes: type) -> Callable[..., int] | None:
    """`name` from the C library, taking `argtypes` and returning an int; None when it has none."""
    try:
        function = getattr(ctypes.CDLL(None), name)  # the C library the interpreter is linked with
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]
