"""StyleGAN2 checkpoints in: rosinality's ``.pt`` and NVIDIA's ``.pkl``.

- :func:`load_stylegan2`: a file -> :class:`StyleGAN2Generator` with its weights, the
  configuration (resolution, z/w size, n_mlp, feature maps) inferred from the shapes.
  ``.pkl`` files are NVIDIA network pickles read by :mod:`.safe_pickle` (no code from
  the file runs); anything else goes through ``torch.load(weights_only=True)`` and may
  be a state dict or a dict holding one under ``g_ema``.
- :mod:`.stylegan2_write` makes seeded random checkpoints in both formats (tests, benchmarks).
- :func:`nvidia_from_rosinality` / :func:`rosinality_from_nvidia`: the name mapping
  (rosinality's ``convert_weight.py`` and NVIDIA's ``legacy.py`` both convert from the
  TF checkpoints; both flip the TF ``Conv0_up`` kernels and both run the upsampling
  convolution as ``conv_transpose2d`` of the (in, out)-transposed weight, so the weights
  are the same tensors in both layouts, reshaped).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from latentedit.workers.models.safe_pickle import UnsafePickleError, load_pickle, load_torch_file
from latentedit.workers.models.stylegan2 import BLUR, StyleGAN2Generator, fir_kernel


class CheckpointError(ValueError):
    """The file is not a checkpoint this architecture can load (the message says why)."""


# ---- rosinality layout -------------------------------------------------------------------


def _num(keys: list[str], pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.fullmatch(pattern, k))}
    return max(found) + 1 if found else 0


def _need(state: dict[str, Tensor], key: str) -> Tensor:
    if key not in state:
        raise CheckpointError(f"missing key {key!r} (rosinality's StyleGAN2 g_ema layout)")
    return state[key]


def config_from_rosinality(state: dict[str, Tensor]) -> dict[str, Any]:
    """Constructor kwargs of :class:`StyleGAN2Generator` inferred from a g_ema state dict."""
    keys = list(state)
    n_mlp = _num(keys, r"style\.(\d+)\.weight") - 1
    if n_mlp < 1:
        raise CheckpointError("missing key 'style.1.weight' (rosinality's StyleGAN2 g_ema layout)")
    first = _need(state, "style.1.weight")
    z_dim, w_dim = int(first.shape[1]), int(first.shape[0])
    n_rgb = _num(keys, r"to_rgbs\.(\d+)\.conv\.weight")
    resolution = 2 ** (n_rgb + 2)
    channels = int(_need(state, "to_rgb1.conv.weight").shape[1])
    widths = {4: int(_need(state, "input.input").shape[1])}
    for k in range(n_rgb):
        widths[2 ** (k + 3)] = int(_need(state, f"convs.{2 * k}.conv.weight").shape[1])
    cm = 2
    if resolution >= 64 and widths[64] % 256 == 0:
        cm = widths[64] // 256
    return {
        "resolution": resolution,
        "z_dim": z_dim,
        "w_dim": w_dim,
        "n_mlp": n_mlp,
        "channel_multiplier": cm,
        "channels": channels,
        "widths": widths,
    }


def _load_into(generator: StyleGAN2Generator, state: dict[str, Tensor]) -> None:
    """Copy ``state`` into ``generator`` checking every key and shape (fixed FIR buffers too)."""
    expected = generator.state_dict()
    fir = fir_kernel(BLUR, 4.0)
    for key, value in state.items():
        if key.endswith((".blur.kernel", ".upsample.kernel")):
            if value.shape != fir.shape or not torch.allclose(value.float(), fir, atol=1e-6):
                raise CheckpointError(f"{key}: only the [1, 3, 3, 1] FIR filter is supported")
            continue
        if key not in expected:
            raise CheckpointError(f"unexpected key {key!r} for a StyleGAN2 generator")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{key}: expected shape {tuple(expected[key].shape)}, got {tuple(value.shape)}"
            )
    missing = [k for k in expected if k not in state]
    if missing:
        shape = tuple(expected[missing[0]].shape)
        raise CheckpointError(f"missing key {missing[0]!r} (expected shape {shape})")
    generator.load_state_dict({k: v for k, v in state.items() if k in expected})


def from_rosinality(state: dict[str, Tensor], w_avg: Tensor | None = None) -> StyleGAN2Generator:
    """A generator from a rosinality ``g_ema`` state dict (+ ``latent_avg`` if known)."""
    state = {k: v.float() for k, v in state.items()}
    generator = StyleGAN2Generator(**config_from_rosinality(state))
    _load_into(generator, state)
    with torch.no_grad():
        if w_avg is not None:
            if w_avg.numel() != generator.info.w_dim:
                want, got = (generator.info.w_dim,), tuple(w_avg.shape)
                raise CheckpointError(f"latent_avg: expected shape {want}, got {got}")
            generator.w_avg.copy_(w_avg.reshape(-1).float())
        else:
            generator.w_avg.copy_(generator.compute_w_avg())
    return generator.eval().requires_grad_(False)


# ---- NVIDIA layout -----------------------------------------------------------------------


def nvidia_from_rosinality(state: dict[str, Tensor], w_avg: Tensor) -> dict[str, Tensor]:
    """rosinality g_ema state -> NVIDIA G_ema parameter/buffer names and shapes."""
    cfg = config_from_rosinality(state)
    out: dict[str, Tensor] = {}
    for i in range(cfg["n_mlp"]):
        out[f"mapping.fc{i}.weight"] = state[f"style.{i + 1}.weight"]
        out[f"mapping.fc{i}.bias"] = state[f"style.{i + 1}.bias"]
    out["mapping.w_avg"] = w_avg.reshape(-1)
    out["synthesis.b4.const"] = state["input.input"][0]

    def layer(src: str, dst: str, noise: int, up: bool = False) -> None:
        out[f"{dst}.weight"] = state[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = state[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = state[f"{src}.conv.modulation.bias"]
        out[f"{dst}.noise_strength"] = state[f"{src}.noise.weight"].reshape(())
        out[f"{dst}.bias"] = state[f"{src}.activate.bias"]
        out[f"{dst}.noise_const"] = state[f"noises.noise_{noise}"][0, 0]
        if up:
            out[f"{dst}.resample_filter"] = fir_kernel(BLUR)

    def torgb(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = state[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = state[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = state[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = state[f"{src}.bias"].reshape(-1)

    layer("conv1", "synthesis.b4.conv1", 0)
    torgb("to_rgb1", "synthesis.b4.torgb")
    for k in range(int(math.log2(cfg["resolution"])) - 2):
        b = f"synthesis.b{2 ** (k + 3)}"
        out[f"{b}.resample_filter"] = fir_kernel(BLUR)
        layer(f"convs.{2 * k}", f"{b}.conv0", 2 * k + 1, up=True)
        layer(f"convs.{2 * k + 1}", f"{b}.conv1", 2 * k + 2)
        torgb(f"to_rgbs.{k}", f"{b}.torgb")
    return out


def _nv(state: dict[str, Tensor], key: str) -> Tensor:
    if key not in state:
        raise CheckpointError(f"missing key {key!r} in the NVIDIA G_ema (StyleGAN2, 'skip' G)")
    return state[key]


def rosinality_from_nvidia(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
    """NVIDIA G_ema tensors (flat names) -> (rosinality g_ema state, w_avg)."""
    if any(k.startswith("mapping.embed") for k in state):
        raise CheckpointError("mapping.embed: class-conditional generators are not supported")
    if any(k.startswith(("synthesis.input.", "synthesis.L0_")) for k in state):
        raise CheckpointError(
            "synthesis.input / synthesis.L*_: a StyleGAN3 generator; only StyleGAN2 / "
            "StyleGAN2-ADA ('skip' synthesis, synthesis.b4 ...) is supported"
        )
    if any(re.fullmatch(r"synthesis\.b\d+\.skip\.weight", k) for k in state):
        raise CheckpointError("synthesis.b*.skip: 'resnet' generators are not supported")
    keys = list(state)
    n_mlp = _num(keys, r"mapping\.fc(\d+)\.weight")
    resolutions = sorted(
        {
            int(m.group(1))
            for k in keys
            if (m := re.fullmatch(r"synthesis\.b(\d+)\.torgb\.weight", k))
        }
    )
    if n_mlp < 1 or not resolutions or resolutions[0] != 4:
        raise CheckpointError("missing key 'mapping.fc0.weight' / 'synthesis.b4.torgb.weight'")
    out: dict[str, Tensor] = {}
    for i in range(n_mlp):
        out[f"style.{i + 1}.weight"] = _nv(state, f"mapping.fc{i}.weight")
        out[f"style.{i + 1}.bias"] = _nv(state, f"mapping.fc{i}.bias")
    out["input.input"] = _nv(state, "synthesis.b4.const")[None]

    def layer(src: str, dst: str, noise: int, up: bool = False) -> None:
        out[f"{dst}.conv.weight"] = _nv(state, f"{src}.weight")[None]
        out[f"{dst}.conv.modulation.weight"] = _nv(state, f"{src}.affine.weight")
        out[f"{dst}.conv.modulation.bias"] = _nv(state, f"{src}.affine.bias")
        out[f"{dst}.noise.weight"] = _nv(state, f"{src}.noise_strength").reshape(1)
        out[f"{dst}.activate.bias"] = _nv(state, f"{src}.bias")
        out[f"noises.noise_{noise}"] = _nv(state, f"{src}.noise_const")[None, None]
        f = state.get(f"{src}.resample_filter")
        if up and f is not None and not torch.allclose(f.float(), fir_kernel(BLUR)):
            raise CheckpointError(f"{src}.resample_filter: only [1, 3, 3, 1] is supported")

    def torgb(src: str, dst: str) -> None:
        out[f"{dst}.conv.weight"] = _nv(state, f"{src}.weight")[None]
        out[f"{dst}.conv.modulation.weight"] = _nv(state, f"{src}.affine.weight")
        out[f"{dst}.conv.modulation.bias"] = _nv(state, f"{src}.affine.bias")
        out[f"{dst}.bias"] = _nv(state, f"{src}.bias").reshape(1, -1, 1, 1)

    layer("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    for k, res in enumerate(resolutions[1:]):
        if res != 2 ** (k + 3):
            raise CheckpointError(f"missing key 'synthesis.b{2 ** (k + 3)}.torgb.weight'")
        b = f"synthesis.b{res}"
        layer(f"{b}.conv0", f"convs.{2 * k}", 2 * k + 1, up=True)
        layer(f"{b}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
        torgb(f"{b}.torgb", f"to_rgbs.{k}")
    return out, _nv(state, "mapping.w_avg")


def _flatten_persistent(obj: Any, prefix: str = "") -> dict[str, Tensor]:
    """Tensors of a pickled module state (``_parameters``, ``_buffers``, ``_modules``)."""
    out: dict[str, Tensor] = {}
    if not isinstance(obj, dict):
        return out
    for group in ("_parameters", "_buffers"):
        for name, value in (obj.get(group) or {}).items():
            if isinstance(value, Tensor):
                out[prefix + name] = value
    for name, child in (obj.get("_modules") or {}).items():
        out.update(_flatten_persistent(child, f"{prefix}{name}."))
    return out


def _conv_clamp(g_ema: dict[str, Any]) -> float | None:
    try:
        layer = g_ema["_modules"]["synthesis"]["_modules"]["b4"]["_modules"]["conv1"]
        clamp = layer.get("conv_clamp")
    except (KeyError, TypeError):
        return None
    return None if clamp is None else float(clamp)


def from_nvidia_pickle(path: str | Path) -> StyleGAN2Generator:
    """NVIDIA StyleGAN2/ADA network pickle -> generator (``G_ema``), nothing executed."""
    data = load_pickle(path)
    if not isinstance(data, dict) or not isinstance(data.get("G_ema"), dict):
        raise CheckpointError(f"{path}: no 'G_ema' network in this pickle")
    g_ema = data["G_ema"]
    state, w_avg = rosinality_from_nvidia(_flatten_persistent(g_ema))
    generator = from_rosinality(state, w_avg)
    generator.set_conv_clamp(_conv_clamp(g_ema))
    return generator


def load_stylegan2(path: str | Path) -> StyleGAN2Generator:
    """Either format: a pickle named ``.pkl``; else rosinality's checkpoint as a
    ``torch.save`` file or as a safetensors file (by content, whatever its name) of
    ``g_ema.*`` keys or the generator's keys alone, optionally with ``latent_avg``."""
    path = Path(path)
    if path.suffix == ".pkl":
        return from_nvidia_pickle(path)
    try:
        ckpt = load_torch_file(path)
    except UnsafePickleError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict, got {type(ckpt).__name__}")
    if "g_ema" not in ckpt and any(str(k).startswith("g_ema.") for k in ckpt):
        ckpt = _unflatten(ckpt)  # a flat file (safetensors): "g_ema.style.1.weight", ...
    state = ckpt.get("g_ema", ckpt)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path}: no StyleGAN2 state dict (missing key 'g_ema'; keys: {sorted(ckpt)[:8]})"
        )
    w_avg = ckpt.get("latent_avg")
    state = {k: v for k, v in state.items() if k != "latent_avg"}  # flat: beside the weights
    return from_rosinality(state, w_avg if isinstance(w_avg, Tensor) else None)


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """{"g_ema.style.1.weight": t, "latent_avg": a} -> {"g_ema": {"style.1.weight": t},
    "latent_avg": a}: rosinality's checkpoint from a flat tensor file."""
    out: dict[str, Any] = {"g_ema": {}}
    for key, value in flat.items():
        if key.startswith("g_ema."):
            out["g_ema"][key.removeprefix("g_ema.")] = value
        else:
            out[key] = value
    return out
