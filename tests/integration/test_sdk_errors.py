"""Bad input: the right status, a message naming the problem, and the service still works.

Each case goes through ``expect_error`` (conftest), which also checks that the next valid
call on the same client succeeds with the expected pixels.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from latentedit.client import Client, InvalidArgument, NotFound, ResourceExhausted
from latentedit.deploy.stack import Stack
from latentedit.v1 import latentedit_pb2 as pb
from latentedit.v1 import latentedit_pb2_grpc as pb_grpc

MODEL = "dcgan-faces"
LATENT_DIM = 100
PREFIX = "errors"
PIXEL_CAP = 4096 * 4096  # Limits.max_pixels

Expect = Callable[..., Any]


@pytest.fixture(scope="module")
def direction(stack: Stack) -> str:
    """Name of a stored direction for this module's edits."""
    with Client(stack.target, timeout=60) as c:
        v = np.random.default_rng(0).standard_normal(LATENT_DIM)
        return c.put_direction(MODEL, f"{PREFIX}_dir", v).name


@pytest.fixture(scope="module")
def z(stack: Stack) -> np.ndarray:
    with Client(stack.target, timeout=60) as c:
        return c.generate(MODEL, seeds=[1, 2]).latents


def bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black mode "1" PNG of any size: 1 bit per pixel, zlib makes it tiny."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


# ---- latents ---------------------------------------------------------------------------------


def test_wrong_latent_dim(client: Client, expect_error: Expect) -> None:
    bad = np.zeros((2, LATENT_DIM - 1), np.float32)
    expect_error(InvalidArgument, lambda: client.generate(MODEL, latents=bad), "latents", "(2, 99)")


def test_three_d_latents(client: Client, expect_error: Expect, direction: str) -> None:
    bad = np.zeros((2, 1, LATENT_DIM), np.float32)
    expect_error(InvalidArgument, lambda: client.generate(MODEL, latents=bad), "latents", "shape")
    expect_error(
        InvalidArgument, lambda: client.edit(MODEL, bad, {direction: 1.0}), "latents", "shape"
    )


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_latents(
    client: Client, expect_error: Expect, direction: str, z: np.ndarray, value: float
) -> None:
    bad = z.copy()
    bad[1, 7] = value
    expect_error(
        InvalidArgument, lambda: client.generate(MODEL, latents=bad), "latents", "non-finite"
    )
    expect_error(
        InvalidArgument, lambda: client.edit(MODEL, bad, {direction: 1.0}), "latents", "non-finite"
    )
    expect_error(
        InvalidArgument,
        lambda: client.conditional_edit(MODEL, bad, direction),
        "latents",
        "non-finite",
    )


def test_non_finite_strength(
    client: Client, expect_error: Expect, direction: str, z: np.ndarray
) -> None:
    expect_error(
        InvalidArgument, lambda: client.edit(MODEL, z, {direction: np.nan}), "strength", "finite"
    )


def test_too_many_seeds(client: Client, expect_error: Expect) -> None:
    expect_error(
        InvalidArgument, lambda: client.generate(MODEL, seeds=list(range(257))), "seeds", "257"
    )


def test_sweep_too_large(
    client: Client, expect_error: Expect, direction: str, z: np.ndarray
) -> None:
    expect_error(
        InvalidArgument,
        lambda: client.edit(MODEL, z, {direction: 1.0}, sweep=(65, -1, 1)),
        "sweep.frames",
        "65",
    )
    many = np.zeros((20, LATENT_DIM), np.float32)  # 20 x 64 frames = 1280 images > 1024
    expect_error(
        InvalidArgument,
        lambda: client.edit(MODEL, many, {direction: 1.0}, sweep=(64, -1, 1)),
        "1280 images",
    )


# ---- models and directions -------------------------------------------------------------------


def test_unknown_model(client: Client, expect_error: Expect, z: np.ndarray) -> None:
    expect_error(NotFound, lambda: client.generate("no-such-model", seeds=[1]), "no-such-model")
    expect_error(NotFound, lambda: client.edit("no-such-model", z, {"x": 1.0}), "no-such-model")
    expect_error(NotFound, lambda: client.directions("no-such-model"), "no-such-model")
    expect_error(NotFound, lambda: client.get_direction("no-such-model/x"), "no-such-model")


def test_unknown_direction(
    client: Client, expect_error: Expect, direction: str, z: np.ndarray
) -> None:
    expect_error(NotFound, lambda: client.edit(MODEL, z, {"errors_missing": 1.0}), "errors_missing")
    expect_error(
        NotFound,
        lambda: client.edit(MODEL, z, {direction: 1.0, "errors_missing2": 1.0}),
        "errors_missing2",
    )
    expect_error(
        NotFound,
        lambda: client.conditional_edit(MODEL, z, direction, ["errors_missing3"]),
        "errors_missing3",
    )
    expect_error(
        NotFound, lambda: client.get_direction(f"{MODEL}/errors_missing4"), "errors_missing4"
    )


def test_direction_of_another_model(
    client: Client, expect_error: Expect, direction: str, z: np.ndarray
) -> None:
    expect_error(
        InvalidArgument,
        lambda: client.edit(MODEL, z, {f"other-model/{direction}": 1.0}),
        "other-model",
        "belongs",
    )
    expect_error(
        InvalidArgument,
        lambda: client.conditional_edit(MODEL, z, direction, [f"other-model/{direction}"]),
        "other-model",
    )


@pytest.mark.parametrize(
    ("bad_id", "named"),
    [
        ("no-slash", "'no-slash' must be '<model>/<name>'"),
        ("/name", "'/name' must be '<model>/<name>'"),
        (f"{MODEL}/", "id '' must be"),
        (f"{MODEL}/bad name!", "'bad name!' must be"),
    ],
)
def test_bad_direction_id(client: Client, expect_error: Expect, bad_id: str, named: str) -> None:
    expect_error(InvalidArgument, lambda: client.get_direction(bad_id), named)
    expect_error(InvalidArgument, lambda: client.delete_direction(bad_id), named)


def test_bad_direction_name_and_vector(client: Client, expect_error: Expect) -> None:
    v = np.ones(LATENT_DIM)
    expect_error(InvalidArgument, lambda: client.put_direction(MODEL, "bad name", v), "name")
    expect_error(
        InvalidArgument,
        lambda: client.put_direction(MODEL, f"{PREFIX}_zero", np.zeros(LATENT_DIM)),
        "non-zero",
    )
    expect_error(
        InvalidArgument,
        lambda: client.put_direction(MODEL, f"{PREFIX}_short", np.ones(LATENT_DIM - 1)),
        "vector",
    )


def test_dependent_conditions(client: Client, expect_error: Expect, z: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    a, b, p = rng.standard_normal((3, LATENT_DIM))
    for name, v in [("dep_a", a), ("dep_b", b), ("dep_ab", a - 2 * b), ("dep_p", p)]:
        client.put_direction(MODEL, f"{PREFIX}_{name}", v)
    conds = [f"{PREFIX}_dep_a", f"{PREFIX}_dep_b", f"{PREFIX}_dep_ab"]
    expect_error(
        InvalidArgument,
        lambda: client.conditional_edit(MODEL, z, f"{PREFIX}_dep_p", conds),
        "linearly dependent",
    )
    # A primary inside the span of its conditions has nothing left to move along.
    client.put_direction(MODEL, f"{PREFIX}_dep_in_span", a + b)
    expect_error(
        InvalidArgument,
        lambda: client.conditional_edit(
            MODEL, z, f"{PREFIX}_dep_in_span", [f"{PREFIX}_dep_a", f"{PREFIX}_dep_b"]
        ),
        "span",
    )
    expect_error(
        InvalidArgument,
        lambda: client.conditional_edit(MODEL, z, f"{PREFIX}_dep_a", [f"{PREFIX}_dep_a"]),
        "distinct",
    )


# ---- images ----------------------------------------------------------------------------------


def test_non_image_bytes_to_invert(client: Client, expect_error: Expect) -> None:
    expect_error(
        InvalidArgument,
        lambda: client.invert(MODEL, [b"this is not an image"], steps=1),
        "images[0]",
        "not a decodable image",
    )
    expect_error(InvalidArgument, lambda: client.invert(MODEL, [], steps=1), "images", "0 given")


def test_image_over_the_pixel_cap(client: Client, expect_error: Expect) -> None:
    """5000x5000 is over the service's cap, but below Pillow's own bomb limit."""
    png = bilevel_png(5000, 5000)
    expect_error(
        InvalidArgument,
        lambda: client.invert(MODEL, [png], steps=1),
        "images[0]",
        "5000x5000",
        f"cap of {PIXEL_CAP}",
    )


def test_huge_png_names_the_pixel_cap(client: Client, expect_error: Expect) -> None:
    png = bilevel_png(20000, 20000)
    assert len(png) < 100_000  # a decompression bomb: 400 M pixels in a few tens of KB
    expect_error(
        InvalidArgument,
        lambda: client.invert(MODEL, [png], steps=1),
        "images[0]",
        f"cap of {PIXEL_CAP}",
    )


def test_bilevel_png_helper_is_a_valid_image() -> None:
    import io

    with Image.open(io.BytesIO(bilevel_png(40, 30))) as img:
        assert img.mode == "1" and img.size == (40, 30)
        assert np.asarray(img).sum() == 0


def test_invert_budgets(client: Client, expect_error: Expect) -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    expect_error(InvalidArgument, lambda: client.invert(MODEL, [img], steps=5001), "steps")
    expect_error(InvalidArgument, lambda: client.invert(MODEL, [img], restarts=65), "restarts")
    expect_error(
        InvalidArgument, lambda: client.invert(MODEL, [img], prior_weight=-1), "prior_weight"
    )
    expect_error(InvalidArgument, lambda: client.invert(MODEL, [img], method="magic"), "magic")
    expect_error(InvalidArgument, lambda: client.invert(MODEL, [img] * 33), "images", "33")


def test_discover_bad_arguments(client: Client, expect_error: Expect) -> None:
    expect_error(InvalidArgument, lambda: client.discover(MODEL, "sefa", top_k=101), "top_k")
    expect_error(
        InvalidArgument, lambda: client.discover(MODEL, "no-such-method"), "no-such-method"
    )


# ---- message size ----------------------------------------------------------------------------


def test_message_over_64_mib(client: Client, stack: Stack, expect_error: Expect) -> None:
    rows = 64 * 1024 * 1024 // (4 * LATENT_DIM) + 1000  # just over 64 MiB of float32
    big = np.zeros((rows, LATENT_DIM), np.float32)
    # The SDK's own limit stops it before it is sent ...
    expect_error(ResourceExhausted, lambda: client.generate(MODEL, latents=big), "larger than")
    # ... and a client allowed to send more is refused by the gateway.
    with Client(stack.target, timeout=60, max_message_bytes=128 * 1024 * 1024) as loose:
        expect_error(
            ResourceExhausted, lambda: loose.generate(MODEL, latents=big), "larger than max"
        )
        np.testing.assert_array_equal(
            loose.generate(MODEL, seeds=[3]).latents, client.generate(MODEL, seeds=[3]).latents
        )


# ---- empty requests, sent raw ----------------------------------------------------------------

SERVICE = pb.DESCRIPTOR.services_by_name["LatentEditor"]


def _empty_cases() -> list[tuple[str, Any, str]]:
    """(rpc, request, word the message must name): every RPC but ListModels with an empty
    request (taken from the service descriptor, so a new RPC is covered automatically), then
    requests naming only the model, where what is still missing must be named."""
    cases = []
    for method in SERVICE.methods:
        if method.name == "ListModels":
            continue  # its empty request is valid
        fields = method.input_type.fields_by_name
        word = "model" if "model" in fields else "id" if "id" in fields else ""
        cases.append((method.name, getattr(pb, method.input_type.name)(), word))
    return [
        *cases,
        ("Generate", pb.GenerateRequest(model=MODEL), "seeds or latents"),
        ("Edit", pb.EditRequest(model=MODEL), "latents"),
        ("ConditionalEdit", pb.ConditionalEditRequest(model=MODEL), "latents"),
        ("Invert", pb.InvertRequest(model=MODEL), "images"),
        ("PutDirection", pb.PutDirectionRequest(model=MODEL), "vector"),
    ]


def test_the_original_rpcs_are_among_the_empty_cases() -> None:
    names = {rpc for rpc, _, _ in _empty_cases()}
    assert {
        "Generate",
        "Edit",
        "ConditionalEdit",
        "Invert",
        "DiscoverDirections",
        "ListDirections",
        "GetDirection",
        "DeleteDirection",
        "PutDirection",
    } <= names


@pytest.mark.parametrize(
    ("rpc", "request_msg", "word"),
    [pytest.param(*case, id=f"{case[0]}-{i}") for i, case in enumerate(_empty_cases())],
)
def test_empty_request(
    stack: Stack, assert_healthy: Callable[[], None], rpc: str, request_msg: Any, word: str
) -> None:
    with grpc.insecure_channel(stack.target) as channel:
        stub = pb_grpc.LatentEditorStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            answer = getattr(stub, rpc)(request_msg, timeout=30)
            if SERVICE.methods_by_name[rpc].server_streaming:
                next(iter(answer))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        details = info.value.details() or ""
        assert details and word in details, details
        # The empty ListModels request is valid.
        assert MODEL in {m.name for m in stub.ListModels(pb.ListModelsRequest()).models}
    assert_healthy()
