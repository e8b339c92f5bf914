"""StyleGAN2 checkpoints out: seeded random weights in rosinality's layout, written as
rosinality's ``.pt`` or as an NVIDIA-style network pickle (tests, benchmarks, and the
property that both load into the same generator; :mod:`.stylegan2_ckpt` reads them)."""

from __future__ import annotations

import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from latentedit.workers.models.stylegan2 import BLUR, StyleGAN2Generator, fir_kernel
from latentedit.workers.models.stylegan2_ckpt import nvidia_from_rosinality


def random_rosinality_state(
    resolution: int = 64,
    z_dim: int = 512,
    n_mlp: int = 8,
    channel_multiplier: int = 2,
    widths: dict[int, int] | None = None,
    seed: int = 0,
) -> tuple[dict[str, Tensor], Tensor]:
    """Seeded random g_ema weights in rosinality's layout (+ its FIR buffers) and a w_avg.

    Weights ~ N(0, 1) (equalised lr; the mapping's weights and biases divided by its lr
    multiplier 0.01, as rosinality initialises them), style-affine biases 1 + N(0, 0.1^2),
    other biases and noise strengths N(0, 0.1^2), stored noises N(0, 1); ToRGB weights
    x0.2 so images stay mostly inside [-1, 1].
    """
    g = torch.Generator().manual_seed(seed)
    model = StyleGAN2Generator(resolution, z_dim, n_mlp, channel_multiplier, widths=widths)
    state: dict[str, Tensor] = OrderedDict()
    for key, value in model.state_dict().items():
        x = torch.randn(value.shape, generator=g)
        if key.startswith("style."):  # stored / lr_mul, as rosinality initialises them
            x = x / 0.01 if key.endswith("weight") else x * 10
        elif key.endswith("modulation.bias"):
            x = 1 + 0.1 * x
        elif key.endswith(("bias", "noise.weight")):
            x = 0.1 * x
        elif key.startswith("to_rgb") and key.endswith("conv.weight"):
            x = 0.2 * x
        state[key] = x
    for k in range(len(model.to_rgbs)):
        state[f"convs.{2 * k}.conv.blur.kernel"] = fir_kernel(BLUR, 4.0)
        state[f"to_rgbs.{k}.upsample.kernel"] = fir_kernel(BLUR, 4.0)
    model.load_state_dict({k: v for k, v in state.items() if "kernel" not in k})
    return state, model.compute_w_avg(1024, seed)


def write_rosinality(path: str | Path, state: dict[str, Tensor], w_avg: Tensor) -> Path:
    """``torch.save({"g_ema": state, "latent_avg": w_avg})`` as rosinality's train/convert do."""
    path = Path(path)
    torch.save({"g_ema": state, "latent_avg": w_avg}, path)
    return path


class _Persistent:
    """Pickles as NVIDIA's persistence does: reconstructor(meta) with meta['state']."""

    def __init__(self, class_name: str, state: dict[str, Any]) -> None:
        self.class_name = class_name
        self.state = state

    def __reduce__(self) -> tuple[Any, ...]:
        meta = {
            "type": "class",
            "version": 6,
            "module_src": "raise RuntimeError('module source must never run')",
            "class_name": self.class_name,
            "state": self.state,
        }
        return (_persistence_module().__dict__["_reconstruct_persistent_obj"], (meta,))


def _persistence_module() -> types.ModuleType:
    """A stand-in ``torch_utils.persistence`` for writing (its reconstructor raises)."""
    name = "torch_utils.persistence"
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)

        def _reconstruct_persistent_obj(meta: Any) -> Any:
            raise RuntimeError("stand-in reconstructor: test pickles are read, never run")

        _reconstruct_persistent_obj.__module__ = name
        _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
        module.__dict__["_reconstruct_persistent_obj"] = _reconstruct_persistent_obj
    return module


def _module_tree(tensors: dict[str, Tensor], class_name: str, extra: dict[str, Any]) -> _Persistent:
    tree: dict[str, Any] = {}
    for key, value in tensors.items():
        node = tree
        *path, leaf = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value

    def build(node: dict[str, Any], name: str) -> _Persistent:
        params: dict[str, Tensor] = OrderedDict()
        buffers: dict[str, Tensor] = OrderedDict()
        modules: dict[str, _Persistent] = OrderedDict()
        for key, value in node.items():
            if isinstance(value, dict):
                modules[key] = build(value, key)
            elif key in ("w_avg", "noise_const", "resample_filter"):
                buffers[key] = value
            else:
                params[key] = torch.nn.Parameter(value.clone(), requires_grad=False)
        state = {"training": False, "_parameters": params, "_buffers": buffers}
        state["_modules"] = modules
        state.update(extra.get(name, {}))
        return _Persistent(name, state)

    return build(tree, class_name)


def write_nvidia_pickle(
    path: str | Path, state: dict[str, Tensor], w_avg: Tensor, conv_clamp: float | None = None
) -> Path:
    """The same weights as NVIDIA's ``{'G_ema': ...}`` network pickle (stand-in reconstructor)."""
    path = Path(path)
    tensors = nvidia_from_rosinality(state, w_avg)
    extra = {"conv1": {"conv_clamp": conv_clamp}, "conv0": {"conv_clamp": conv_clamp}}
    network = _module_tree(tensors, "Generator", extra)
    module = _persistence_module()
    added = [n for n in ("torch_utils", "torch_utils.persistence") if n not in sys.modules]
    for name in added:
        sys.modules[name] = module if name.endswith("persistence") else types.ModuleType(name)
    try:
        with path.open("wb") as f:
            pickle.dump({"G_ema": network, "training_set_kwargs": None}, f, protocol=4)
    finally:
        for name in added:
            del sys.modules[name]
    return path


def write_bench_checkpoint(
    directory: str | Path,
    name: str = "stylegan2-256",
    resolution: int = 256,
    channel_multiplier: int = 2,
    seed: int = 0,
) -> tuple[Path, str]:
    """A seeded random StyleGAN2 (z/w 512, 8 mapping layers) for benchmarks.

    Returns the rosinality ``.pt`` written under ``directory`` and the worker argument
    that serves it, ``NAME=stylegan2:PATH`` (``latentedit worker --model ...``).
    """
    state, w_avg = random_rosinality_state(resolution, 512, 8, channel_multiplier, seed=seed)
    path = write_rosinality(Path(directory) / f"{name}.pt", state, w_avg)
    return path, f"{name}=stylegan2:{path}"
