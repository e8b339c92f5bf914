"""Operator model configuration and the DCGAN loader that matches tensors by order and shape."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from latentedit.errors import NotFound
from latentedit.workers.models.dcgan import (
    DCGANGenerator,
    dcgan_from_state_dict,
    find_state_dict,
    random_dcgan_state,
)
from latentedit.workers.models.registry import (
    DEFAULT_MODELS,
    build_registry,
    get_spec,
    load_models_file,
    parse_model_arg,
)
from latentedit.workers.models.runtime import ModelLoadError, load_model
from latentedit.workers.models.stylegan2_write import random_rosinality_state, write_rosinality


def _renamed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same tensors under unrelated names (another codebase's layout)."""
    return {
        f"gen.block{i:02d}.param_{k.rsplit('.', 1)[1]}": v for i, (k, v) in enumerate(state.items())
    }


def test_a_dcgan_with_other_names_and_sizes_loads_by_order_and_shape() -> None:
    state = random_dcgan_state(latent_dim=64, widths=(128, 64, 32), seed=1)  # 32 px, ngf 32
    reference = DCGANGenerator(64, 3, widths=(128, 64, 32))
    reference.load_state_dict(state)
    reference.eval()
    loaded = dcgan_from_state_dict(find_state_dict({"netG": _renamed(state), "epoch": 3}))
    loaded.eval()
    info = loaded.info
    assert (info.resolution, info.z_dim, info.channels) == (32, 64, 3)
    assert info.spaces == ("z",) and info.feature_shape == (128, 4, 4)
    z = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = loaded(z)
        torch.testing.assert_close(out, reference(z), rtol=0, atol=0)
    assert out.shape == (4, 3, 32, 32) and out.std() > 0


def test_dcgan_checkpoint_files_load_weights_only(tmp_path: Path) -> None:
    """A training checkpoint (argparse options, optimiser) loads; a pickled module is refused."""
    state = random_dcgan_state(latent_dim=32, widths=(64, 32), seed=2)  # 16 px
    path = tmp_path / "ckpt.pt"
    torch.save(
        {
            "generator_state_dict": _renamed(state),
            "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 2e-4, "params": []}]},
            "args": argparse.Namespace(nz=32, ngf=16),
            "epoch": 7,
        },
        path,
    )
    spec = parse_model_arg(f"small=dcgan:{path}")
    model = load_model(spec)
    assert (model.info.resolution, model.info.z_dim) == (16, 32)
    assert model.render(np.zeros((1, 32), np.float32)).shape == (1, 16, 16, 3)
    whole = tmp_path / "module.pt"
    generator = DCGANGenerator(32, 3, widths=(64, 32))
    torch.save(generator, whole)  # the whole nn.Module: needs code from the file to rebuild
    with pytest.raises(ModelLoadError, match=r"it pickles .*DCGANGenerator.*state_dict\(\)"):
        load_model(parse_model_arg(f"whole=dcgan:{whole}"))


def test_a_safetensors_dcgan_with_sorted_keys_loads_by_name(tmp_path: Path) -> None:
    """A 64-px tutorial DCGAN with conv biases saved as safetensors: its keys come back
    sorted (main.10 before main.3, BatchNorm's bias before its weight), and it renders as
    the original does."""
    bias = (True, False, False, True, True)
    state = random_dcgan_state(latent_dim=48, widths=(64, 32, 16, 8), seed=3, conv_bias=bias)
    reference = DCGANGenerator(48, 3, widths=(64, 32, 16, 8), conv_bias=bias).eval()
    reference.load_state_dict(state)
    path = tmp_path / "netG.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    keys = list(load_file(str(path)))
    assert keys.index("main.12.weight") < keys.index("main.3.weight")
    assert keys.index("main.1.bias") < keys.index("main.1.weight")
    model = load_model(parse_model_arg(f"tutorial=dcgan:{path}"))
    assert (model.info.resolution, model.info.z_dim) == (64, 48)
    z = np.random.default_rng(0).standard_normal((3, 48)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(z))
    torch.testing.assert_close(model.forward(torch.from_numpy(z)), expected, rtol=0, atol=0)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:-100])  # a truncated download
    with pytest.raises(ModelLoadError, match=r"cut\.safetensors: not a readable safetensors file"):
        load_model(parse_model_arg(f"cut=dcgan:{cut}"))


def test_a_grey_dcgan_renders_its_channel_in_rgb_and_inverts_grey_targets(
    tmp_path: Path,
) -> None:
    """A 1-channel checkpoint (MNIST-style) serves: its images are RGB with R = G = B =
    the checkpoint's own output; a colour target becomes grey (luma) for it. Other channel
    counts are refused at load time, naming what is served."""
    from latentedit.workers.methods.preprocess import preprocess

    state = random_dcgan_state(latent_dim=100, widths=(128, 64, 32), channels=1, seed=4)
    path = tmp_path / "mnist_netG.pt"
    torch.save({"generator": _renamed(state)}, path)
    model = load_model(parse_model_arg(f"digits=dcgan:{path}"))
    assert (model.info.channels, model.info.resolution) == (1, 32)
    plain = torch.nn.Sequential(*DCGANGenerator(100, 1, widths=(128, 64, 32)).main).eval()
    plain.load_state_dict({k.removeprefix("main."): v for k, v in state.items()})
    z = np.random.default_rng(1).standard_normal((2, 100)).astype(np.float32)
    with torch.no_grad():
        grey = plain(torch.from_numpy(z)[:, :, None, None])
    out = model.forward(torch.from_numpy(z))
    assert out.shape == (2, 3, 32, 32)
    for c in range(3):
        torch.testing.assert_close(out[:, c : c + 1], grey, rtol=0, atol=0)
    pixels = model.render(z)
    assert pixels.shape == (2, 32, 32, 3) and (pixels == pixels[..., :1]).all()
    colour = np.zeros((40, 40, 3), np.uint8)
    colour[..., 0] = 200  # red: luma 0.299 * 200 = 60
    target, _ = preprocess(colour, 32, channels=1)
    assert target.shape == (32, 32, 3) and (target == 60).all()
    rgba = random_dcgan_state(latent_dim=16, widths=(32, 16), channels=4, seed=5)
    torch.save(rgba, tmp_path / "rgba.pt")
    with pytest.raises(ModelLoadError, match="4-channel images; the service serves 1 or 3"):
        load_model(parse_model_arg(f"rgba=dcgan:{tmp_path / 'rgba.pt'}"))


def test_dcgan_layers_that_do_not_fit_name_the_key() -> None:
    state = random_dcgan_state(latent_dim=16, widths=(32, 16), seed=0)
    bad = dict(state)
    bad["main.3.weight"] = torch.zeros(31, 16, 4, 4)
    with pytest.raises(ValueError, match=r"main\.3\.weight: expected shape \(32, \*, 4, 4\)"):
        dcgan_from_state_dict(bad)
    short = {k: v for k, v in state.items() if k != "main.1.running_var"}
    with pytest.raises(ValueError, match=r"main\.0\.weight: followed by 3 vectors"):
        dcgan_from_state_dict(short)
    with pytest.raises(ValueError, match="no generator state dict found"):
        find_state_dict({"optimizer": {"lr": 1}})


def test_model_args_and_models_file(tmp_path: Path) -> None:
    spec = parse_model_arg("ffhq=stylegan2:/models/ffhq.pt")
    assert (spec.name, spec.architecture, spec.path) == ("ffhq", "stylegan2", "/models/ffhq.pt")
    for bad in ("ffhq", "ffhq=stylegan2", "=dcgan:/x"):
        with pytest.raises(ValueError, match="NAME=ARCH:PATH"):
            parse_model_arg(bad)
    with pytest.raises(ValueError, match="unknown architecture 'biggan'"):
        parse_model_arg("x=biggan:/x.pt")
    toml = tmp_path / "models.toml"
    toml.write_text(
        '[models.small]\narch = "dcgan"\npath = "small.pt"\n'
        '[models.sg]\narch = "stylegan2"\npath = "/abs/sg.pkl"\ntruncation_psi = 0.7\n'
    )
    specs = load_models_file(toml)
    assert specs["small"].path == str(tmp_path / "small.pt")
    assert specs["sg"].truncation_psi == 0.7 and specs["sg"].path == "/abs/sg.pkl"
    registry = build_registry(["small=dcgan:/other.pt"], str(toml))
    assert set(registry) == {*DEFAULT_MODELS, "small", "sg"}
    assert registry["small"].path == "/other.pt"  # --model wins over the file
    assert set(build_registry(["a=dcgan:/a.pt"], defaults=False)) == {"a"}
    with pytest.raises(NotFound, match=r"unknown model 'nope'; registered: \['a'\]"):
        get_spec("nope", build_registry(["a=dcgan:/a.pt"], defaults=False))
    toml.write_text('[models.x]\narch = "dcgan"\npaht = "typo.pt"\n')
    with pytest.raises(ValueError, match=r"unknown keys \['paht'\]"):
        load_models_file(toml)


def test_configured_models_load_with_version_and_contract(tmp_path: Path) -> None:
    dc = tmp_path / "small.pt"
    torch.save({"state_dict": _renamed(random_dcgan_state(64, (128, 64, 32), seed=2))}, dc)
    state, w_avg = random_rosinality_state(32, 64, 2, widths={4: 32, 8: 32, 16: 16, 32: 16})
    sg = write_rosinality(tmp_path / "sg.pt", state, w_avg)
    registry = build_registry([f"small=dcgan:{dc}", f"sg=stylegan2:{sg}"])
    small = load_model(registry["small"])
    assert small.info.resolution == 32 and small.latent_dim == 64
    assert small.spec.resolution == 32 and small.version == small.info.version[:16]
    assert small.render(np.zeros((2, 64), np.float32)).shape == (2, 32, 32, 3)
    assert small.first_projection().shape == (128 * 16, 64)
    model = load_model(registry["sg"])
    assert model.info.spaces == ("z", "w", "w+") and model.info.num_ws == 8
    assert model.bytes_per_image > 0
    w = model.generator.mapping(torch.zeros(1, 64)).numpy()
    a = model.render(w, "w")
    b = model.render(np.repeat(w[:, None], 8, 1).reshape(1, -1), "w+")
    np.testing.assert_array_equal(a, b)
    missing = build_registry([f"gone=stylegan2:{tmp_path / 'gone.pt'}"])["gone"]
    with pytest.raises(Exception, match="does not exist"):
        load_model(missing)
    wrong = build_registry([f"wrong=stylegan2:{dc}"])["wrong"]
    with pytest.raises(ModelLoadError, match=r"model wrong \(stylegan2, .*: .*missing key .g_ema."):
        load_model(wrong)


def test_max_batch_search_finds_the_largest_batch_that_fits() -> None:
    from latentedit.workers.models.runtime import search_max_batch

    capacity, base, per = 1000, 100, 37  # bytes
    calls: list[int] = []

    def peak(n: int) -> int | None:
        calls.append(n)
        need = base + per * n
        return need if need <= capacity else None

    assert search_max_batch(peak, 64) == ((capacity - base) // per, per)
    assert len(calls) <= 2 + 7 + 1  # 1, limit, log2(64) halvings, the final peak
    assert search_max_batch(peak, 8) == (8, per)  # the limit fits: no search
    with pytest.raises(ValueError, match="one image does not fit"):
        search_max_batch(lambda n: None, 8)


def test_cli_model_flags(tmp_path: Path) -> None:
    from latentedit.deploy.cli import main

    with pytest.raises(SystemExit, match="model configuration: --model wants NAME=ARCH:PATH"):
        main(["worker", "--model", "ffhq-stylegan2.pt"])
    with pytest.raises(SystemExit, match="unknown architecture 'stylegan3'"):
        main(["worker", "--model", "x=stylegan3:/m/x.pkl"])
    missing = tmp_path / "none.toml"
    with pytest.raises(SystemExit, match=r"model configuration: .*none\.toml"):
        main(["worker", "--models-file", str(missing)])


def test_reduced_precision_renders_close_to_float32(tmp_path: Path) -> None:
    state, w_avg = random_rosinality_state(32, 64, 2, widths={4: 32, 8: 32, 16: 16, 32: 16})
    spec = build_registry([f"sg=stylegan2:{write_rosinality(tmp_path / 'sg.pt', state, w_avg)}"])
    z = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    full = load_model(spec["sg"]).render(z).astype(np.float64)
    half = load_model(spec["sg"], dtype="bfloat16")
    assert half.dtype == torch.bfloat16 and half.info.version == load_model(spec["sg"]).info.version
    diff = np.abs(half.render(z).astype(np.float64) - full)
    assert diff.mean() < 3 and full.std() > 10  # uint8 levels
