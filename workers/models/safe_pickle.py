"""Reading NVIDIA StyleGAN2/ADA ``.pkl`` files without running code from them.

NVIDIA's network pickles are plain :mod:`pickle` streams whose networks are
``torch_utils.persistence`` objects: each is rebuilt by
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, which would
``exec`` the module source stored in the file. :class:`RestrictedUnpickler`
resolves globals through an allow-list only: tensor/storage rebuilders
(storages are read with ``torch.load(weights_only=True)``), ``OrderedDict``,
numpy scalars/dtypes, ``dnnlib.util.EasyDict`` (as a plain dict) and the
persistence reconstructor, replaced by a function that returns the pickled
state as a :class:`PersistentState` (a dict with the class name) and runs
nothing. Any other global raises :class:`UnsafePickleError`.

(The stdlib's ``pickle.Unpickler.find_class`` override is the documented way
to restrict globals; torch's own ``weights_only`` unpickler cannot be
extended with a stand-in for the persistence reconstructor.)

:func:`load_torch_file` reads ``torch.save`` checkpoints with torch's own
``weights_only`` unpickler, plus the few plain-data classes training scripts store
next to the weights (:data:`CHECKPOINT_GLOBALS`), and ``.safetensors`` files (recognised
by their header, whatever their name) with the safetensors library.
"""

from __future__ import annotations

import argparse
import collections
import io
import pickle
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; nothing from it was run."""


class PersistentState(dict[str, Any]):
    """The state of a ``torch_utils.persistence`` object: its ``__dict__`` as a dict.

    ``class_name`` is the name NVIDIA's pickle gave the class (e.g. ``Generator``).
    """

    class_name: str = ""


class EasyDict(dict[str, Any]):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict (attribute access not needed)."""


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> PersistentState:
    """Replaces NVIDIA's reconstructor: returns the state; never executes ``module_src``."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise UnsafePickleError("persistent object with unexpected metadata")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise UnsafePickleError("persistent object whose state is not a dict")
    out = PersistentState(state)
    out.class_name = str(meta.get("class_name", ""))
    return out


def _load_storage(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _rebuild_tensor(storage: Any, offset: int, size: tuple, stride: tuple, *_: Any) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` without the pickled hooks and metadata."""
    if not isinstance(storage, torch.TypedStorage | torch.UntypedStorage):
        raise UnsafePickleError(f"tensor rebuilt from a {type(storage).__name__}, not a storage")
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())


def _numpy_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` for plain ndarrays only (state set by BUILD)."""
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"numpy array subclass {subtype!r} is not allowed")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool, *_: Any) -> torch.Tensor:
    return data  # a plain tensor is all a loader needs


def _rebuild_from_type_v2(func: Callable[..., Any], new_type: Any, args: tuple, state: Any) -> Any:
    if new_type not in (torch.Tensor, torch.nn.Parameter):
        raise UnsafePickleError(f"tensor subclass {new_type!r} is not allowed")
    return func(*args)


def _numpy_scalar(dtype: np.dtype, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise UnsafePickleError(f"numpy scalar of dtype {dtype!r} is not allowed")
    return np.frombuffer(data, dtype=dtype)[0]


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes (latin-1 only)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode is only allowed for latin-1 bytes")
    return text.encode("latin1")


ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch", "device"): torch.device,
    ("torch", "Size"): torch.Size,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only :data:`ALLOWED` globals (and torch dtypes); anything else raises."""

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED.get((module, name))
        if found is not None:
            return found
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        hint = (
            "; this is a TensorFlow StyleGAN pickle: convert it first (NVIDIA's "
            "stylegan2-ada-pytorch legacy.py, or rosinality's convert_weight.py)"
            if module.startswith("dnnlib.tflib")
            else ""
        )
        raise UnsafePickleError(
            f"refusing to load global {module}.{name}: not on the allow-list of tensor "
            f"and NVIDIA persistence reconstructors (nothing from the file was executed){hint}"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"unexpected persistent id {pid!r} in a network pickle")


def load_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`."""
    with Path(path).open("rb") as f:
        return RestrictedUnpickler(f).load()


#: Plain-data classes a ``torch.save`` checkpoint may hold besides torch's own allow-list:
#: rosinality's ``train.py`` stores its ``argparse`` options as ``"args"`` next to ``g_ema``
#: (a Namespace is rebuilt as an empty object plus a dict of values; nothing is called).
CHECKPOINT_GLOBALS: list[Any] = [argparse.Namespace]


def is_safetensors(path: str | Path) -> bool:
    """Whether ``path`` starts like a safetensors file: an 8-byte little-endian header
    length that fits the file, then the header's JSON object."""
    with Path(path).open("rb") as f:
        head = f.read(9)
        size = f.seek(0, 2)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return 2 <= int.from_bytes(head[:8], "little") <= size - 8


def load_torch_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, also allowing :data:`CHECKPOINT_GLOBALS`;
    a safetensors file -> its flat dict of tensors (key order: the file's, i.e. sorted).

    Raises :class:`UnsafePickleError` naming the globals outside the allow-list (a whole
    pickled ``nn.Module``, say); nothing from the file runs.
    """
    if is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except SafetensorError as exc:
            raise ValueError(f"{path}: not a readable safetensors file: {exc}") from None
    try:
        with torch.serialization.safe_globals(CHECKPOINT_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # a file torch cannot even scan: name nothing
            unsafe = []
        allowed = {f"{c.__module__}.{c.__qualname__}" for c in CHECKPOINT_GLOBALS}
        named = [g for g in unsafe if g not in allowed]
        raise UnsafePickleError(
            f"{path}: not loadable with weights_only=True"
            + (f": it pickles {', '.join(named)}" if named else "")
            + "; save the generator's state_dict() (tensors only) instead "
            "(nothing from the file was executed)"
        ) from None
