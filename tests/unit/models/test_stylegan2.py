"""StyleGAN2: exactness against an independent implementation, checkpoint formats, contract."""

from __future__ import annotations

import argparse
import io
import os
import pickle
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from latentedit.workers.models.contract import StyleGenerator, is_style
from latentedit.workers.models.safe_pickle import UnsafePickleError, load_pickle
from latentedit.workers.models.stylegan2 import StyleGAN2Generator
from latentedit.workers.models.stylegan2_ckpt import (
    CheckpointError,
    config_from_rosinality,
    from_rosinality,
    load_stylegan2,
    nvidia_from_rosinality,
    rosinality_from_nvidia,
)
from latentedit.workers.models.stylegan2_write import (
    random_rosinality_state,
    write_nvidia_pickle,
    write_rosinality,
)

sys.path.insert(0, str(Path(__file__).parent))
from reference_stylegan2 import reference_from_rosinality

SMALL = {4: 64, 8: 64, 16: 32, 32: 32}
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="module")
def small() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    return random_rosinality_state(32, 64, 2, widths=SMALL, seed=7)


def _z(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("resolution", "z_dim", "n_mlp", "widths"),
    [
        (64, 512, 8, None),  # rosinality's config F table
        (256, 128, 4, {4: 128, 8: 128, 16: 64, 32: 64, 64: 32, 128: 32, 256: 16}),
    ],
)
def test_matches_the_independent_implementation(
    resolution: int, z_dim: int, n_mlp: int, widths: dict[int, int] | None
) -> None:
    state, w_avg = random_rosinality_state(resolution, z_dim, n_mlp, widths=widths, seed=3)
    ours = from_rosinality(state, w_avg)
    ref, noises = reference_from_rosinality(
        state, resolution, z_dim, n_mlp, config_from_rosinality(state)["widths"]
    )
    z = _z(2, z_dim, seed=1)
    with torch.no_grad():
        a, b = ours(z), ref([z], noises=noises)
        ws = ours.mapping(z)[:, None].expand(-1, ours.info.num_ws, -1).clone()
        ws[:, 3] = ours.mapping(_z(2, z_dim, seed=2))  # per-layer styles (w+)
        c, d = ours.synthesis(ws), ref([ws], input_type="w_plus", noises=noises)
    assert a.shape == (2, 3, resolution, resolution)
    assert a.std() > 0.1 and not torch.equal(a, c)
    assert (a - b).abs().max() <= 1e-4
    assert (c - d).abs().max() <= 1e-4


def test_rosinality_nvidia_and_safetensors_files_render_identically(
    tmp_path: Path, small: tuple[dict[str, torch.Tensor], torch.Tensor]
) -> None:
    """The same weights as rosinality's .pt, NVIDIA's .pkl, and rosinality's tensors flat in
    a safetensors file (``g_ema.*`` keys, sorted, and ``latent_avg``) under a name that says
    nothing of its format."""
    state, w_avg = small
    pt = load_stylegan2(write_rosinality(tmp_path / "g.pt", state, w_avg))
    pkl = load_stylegan2(write_nvidia_pickle(tmp_path / "g.pkl", state, w_avg))
    flat = {f"g_ema.{k}": v.contiguous() for k, v in state.items()} | {"latent_avg": w_avg}
    save_file(flat, str(tmp_path / "generator.weights"))
    st = load_stylegan2(tmp_path / "generator.weights")
    z = _z(3, 64)
    with torch.no_grad():
        a, b, c = pt(z), pkl(z), st(z)
    assert a.std() > 0.1
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=0, atol=0)
    torch.testing.assert_close(pt.w_avg, pkl.w_avg, rtol=0, atol=0)
    torch.testing.assert_close(st.w_avg, w_avg, rtol=0, atol=0)
    # The conversion round-trips exactly; NVIDIA's conv0 holds rosinality's up-conv kernel
    # as it is (both layouts flip TF's Conv0_up kernel when converting from TF).
    back, avg = rosinality_from_nvidia(nvidia_from_rosinality(state, w_avg))
    for key, value in back.items():
        assert torch.equal(value, state[key]), key
    assert torch.equal(avg, w_avg)
    nv = nvidia_from_rosinality(state, w_avg)
    assert torch.equal(nv["synthesis.b8.conv0.weight"], state["convs.0.conv.weight"][0])
    assert torch.equal(nv["synthesis.b16.conv1.noise_const"], state["noises.noise_4"][0, 0])


def test_nvidia_conv_clamp_is_applied(
    tmp_path: Path, small: tuple[dict[str, torch.Tensor], torch.Tensor]
) -> None:
    state, w_avg = small
    free = load_stylegan2(write_nvidia_pickle(tmp_path / "a.pkl", state, w_avg))
    clamped = load_stylegan2(write_nvidia_pickle(tmp_path / "b.pkl", state, w_avg, 0.05))
    with torch.no_grad():
        a, b = free(_z(2, 64)), clamped(_z(2, 64))
    assert not torch.allclose(a, b)


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


class _Evals:
    def __reduce__(self) -> tuple[object, ...]:
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval"])
def test_a_pickle_that_runs_code_is_refused(
    tmp_path: Path, small: tuple[dict[str, torch.Tensor], torch.Tensor], payload: str
) -> None:
    marker = tmp_path / "pwned"
    evil = _RunsShell(marker) if payload == "os.system" else _Evals()
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": evil}, protocol=4))
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        load_stylegan2(path)
    assert not marker.exists()
    # Hidden inside a real network pickle, after the tensors: refused all the same.
    state, w_avg = small
    good = write_nvidia_pickle(tmp_path / "good.pkl", state, w_avg).read_bytes()
    combo = tmp_path / "combo.pkl"
    with combo.open("wb") as f:
        f.write(good[:-1])  # drop STOP: the dict is left on the stack
        f.write(pickle.dumps(evil, protocol=4)[2:])  # then the evil object, then STOP
    with pytest.raises(UnsafePickleError):
        load_pickle(combo)
    assert not marker.exists()


def test_a_tensorflow_stylegan_pickle_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """The original StyleGAN2 release pickles dnnlib.tflib networks: refused, with the
    converters that turn it into a checkpoint this loader reads."""
    path = tmp_path / "stylegan2-ffhq-config-f.pkl"
    # one dnnlib.tflib.network.Network object (TF pickles hold a tuple (G, D, Gs) of them)
    path.write_bytes(b"\x80\x02cdnnlib.tflib.network\nNetwork\n)\x81}b.")
    with pytest.raises(UnsafePickleError, match=r"TensorFlow StyleGAN pickle: convert it"):
        load_stylegan2(path)


@pytest.mark.parametrize(
    ("extra_key", "message"),
    [
        ("mapping.embed.weight", "class-conditional"),
        ("synthesis.b8.skip.weight", "'resnet' generators"),
        ("synthesis.L0_36_512.affine.weight", "a StyleGAN3 generator"),
    ],
)
def test_nvidia_generators_this_loader_cannot_render_are_named(
    small: tuple[dict[str, torch.Tensor], torch.Tensor], extra_key: str, message: str
) -> None:
    state, w_avg = small
    nvidia = nvidia_from_rosinality(state, w_avg) | {extra_key: torch.zeros(1)}
    with pytest.raises(CheckpointError, match=message):
        rosinality_from_nvidia(nvidia)


def test_the_persistence_source_is_never_executed(
    tmp_path: Path, small: tuple[dict[str, torch.Tensor], torch.Tensor]
) -> None:
    # The stand-in writer stores module_src = "raise RuntimeError(...)": loading works,
    # so the source was not run; and the state comes back as data.
    state, w_avg = small
    data = load_pickle(write_nvidia_pickle(tmp_path / "g.pkl", state, w_avg))
    g_ema = data["G_ema"]
    assert g_ema.class_name == "Generator" and "_modules" in g_ema
    raw = (tmp_path / "g.pkl").read_bytes()
    assert b"torch_utils.persistence" in raw and b"raise RuntimeError" in raw


def test_checkpoint_errors_name_the_key_and_shape(
    tmp_path: Path, small: tuple[dict[str, torch.Tensor], torch.Tensor]
) -> None:
    state, w_avg = small
    wrong = dict(state)
    wrong["convs.1.conv.weight"] = torch.zeros(1, 64, 32, 3, 3)
    with pytest.raises(
        CheckpointError,
        match=r"convs\.1\.conv\.weight: expected shape \(1, 64, 64, 3, 3\), "
        r"got \(1, 64, 32, 3, 3\)",
    ):
        from_rosinality(wrong, w_avg)
    missing = {k: v for k, v in state.items() if k != "conv1.noise.weight"}
    with pytest.raises(
        CheckpointError, match=r"missing key 'conv1\.noise\.weight' \(expected shape \(1,\)\)"
    ):
        from_rosinality(missing, w_avg)
    with pytest.raises(CheckpointError, match=r"style\.1\.weight"):
        load_stylegan2(_save(tmp_path / "other.pt", {"g_ema": {"main.0.weight": torch.zeros(3)}}))
    nv = nvidia_from_rosinality(state, w_avg)
    del nv["synthesis.b16.conv1.affine.weight"]
    with pytest.raises(CheckpointError, match=r"synthesis\.b16\.conv1\.affine\.weight"):
        rosinality_from_nvidia(nv)


def _save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def test_torch_load_is_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    buf = io.BytesIO()
    torch.save({"g_ema": {}, "x": _Evals()}, buf)  # torch.save pickles arbitrary objects
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match=r"weights_only=True: it pickles builtins\.eval"):
        load_stylegan2(path)


def test_a_rosinality_training_checkpoint_loads(
    tmp_path: Path, small: tuple[dict[str, torch.Tensor], torch.Tensor]
) -> None:
    """rosinality's train.py saves g, d, g_ema, the optimisers and its argparse options."""
    state, w_avg = small
    noisy = {k: v + 1 for k, v in state.items()}  # "g" (not the EMA) must not be the one used
    ckpt = {
        "g": noisy,
        "d": {"convs.0.0.weight": torch.zeros(8, 3, 1, 1)},
        "g_ema": state,
        "g_optim": {"state": {}, "param_groups": [{"lr": 0.002, "params": [0, 1]}]},
        "args": argparse.Namespace(size=32, latent=64, n_mlp=2, channel_multiplier=2),
        "ada_aug_p": 0.0,
    }
    trained = load_stylegan2(_save(tmp_path / "000100.pt", ckpt))
    converted = load_stylegan2(write_rosinality(tmp_path / "g.pt", state, w_avg))
    z = _z(2, 64)
    with torch.no_grad():
        torch.testing.assert_close(trained(z), converted(z), rtol=0, atol=1e-6)


def test_contract_spaces_truncation_and_determinism(
    small: tuple[dict[str, torch.Tensor], torch.Tensor],
) -> None:
    state, w_avg = small
    g = from_rosinality(state, w_avg)
    assert isinstance(g, StyleGenerator) and is_style(g)
    info = g.info
    assert (info.resolution, info.z_dim, info.w_dim, info.num_ws) == (32, 64, 64, 8)
    assert info.spaces == ("z", "w", "w+") and info.n_mlp == 2 and info.num_noises == 7
    assert info.sefa_layers == ("conv1", *(f"convs.{i}" for i in range(6)))
    assert "sefa" in info.discover_methods
    z = _z(4, 64)
    with torch.no_grad():
        torch.testing.assert_close(g.mapping(z, psi=0.0), w_avg.expand(4, -1))
        w = g.mapping(z)
        half = g.mapping(z, psi=0.5)
        torch.testing.assert_close(half, w_avg + 0.5 * (w - w_avg))
        ws = w[:, None].expand(-1, 8, -1)
        torch.testing.assert_close(g.synthesis(ws), g(z))
        torch.testing.assert_close(g.tail(g.head(ws), ws), g(z))
        assert torch.equal(g(z), g(z))  # stored noises: deterministic
    a = g.sefa_weight([0, 2])
    assert a.shape == (64 + 64, 64)  # conv1 in=64, convs.1 in=64 (8 px)
    assert g.sefa_weight().shape[0] == 64 * 4 + 32 * 3  # in-channels of the 7 convs
    with pytest.raises(ValueError, match=r"w\+ must be \(N, 8, 64\)"):
        g.synthesis(torch.zeros(2, 7, 64))


def test_config_inference_reads_rosinality_tables() -> None:
    state, _ = random_rosinality_state(64, 32, 3, channel_multiplier=1, seed=0)
    cfg = config_from_rosinality(state)
    assert cfg["resolution"] == 64 and cfg["n_mlp"] == 3 and cfg["z_dim"] == 32
    assert cfg["channel_multiplier"] == 1 and cfg["widths"][64] == 256
    g = StyleGAN2Generator(**cfg)
    assert g.info.channel_multiplier == 1 and g.info.num_ws == 10
