"""Malformed requests for bench/fuzz.py: hypothesis strategies drawn from the protobuf
descriptors (odd values, bad tensors and images, mutated valid templates).

:func:`message` draws any message of a descriptor field by field; :func:`templates` are one
valid request per RPC and :func:`mutated` breaks one or a few of their fields, so that checks
deeper than the first field are reached; :func:`prepare` stores what the templates refer to.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from google.protobuf import descriptor as _d
from google.protobuf import message_factory
from hypothesis import strategies as st
from PIL import Image

from latentedit.v1 import latentedit_pb2 as pb

MODELS = ["dcgan-faces", "shapes"]
FD = _d.FieldDescriptor

# ---- values ------------------------------------------------------------------------------

INT64_EDGES = [-(2**63), -(2**31) - 1, -1, 0, 1, 2**31, 2**62, 2**63 - 1]
INT32_EDGES = [-(2**31), -1, 0, 1, 2**31 - 1, 257, 5001, 100_001]
NAMES = [
    "sefa_00",
    "fz_dir",
    "dcgan-faces/sefa_00",
    "shapes/fz_dir",
    "x" * 16384,
    "a/b/c",
    "name\n",
    "../../etc",
    "",
    "ünïcödé",
    "scale",
    "hue",
    "brightness",
]
METHODS = ["", "optimize", "encoder", "hybrid", "extended", "tune", "auto", "sefa", "ganspace"]
METHODS += ["interfacegan", "nope", "m" * 5000]


def _text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NAMES),
        st.text(max_size=40),
        st.integers(200, 20000).map(lambda n: "y" * n),
    )


def _int(bits: int) -> st.SearchStrategy[int]:
    edges = INT64_EDGES if bits == 64 else INT32_EDGES
    return st.one_of(st.integers(-3, 6), st.sampled_from(edges))


def _float() -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(-10, 10, width=32),
        st.sampled_from([float("nan"), float("inf"), -float("inf"), 3.0e38, -1e-45, 0.0]),
    )


def _png(w: int = 8, h: int = 8, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (h, w, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels but holds almost nothing (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


PNG = _png()
IMAGE_BYTES = [
    PNG,
    PNG + b"\0" * 5000,
    PNG[:-10],
    PNG[:30],
    _jpeg(),
    _jpeg()[:-2],
    _png_header(100_000, 100_000),
    _png_header(4096, 4096),
    _png_header(0, 5),
    b"RIFF\xff\xff\xff\x7fWEBPVP8 ",
    b"GIF89a" + b"\0" * 20,
    b"BM" + b"\0" * 60,
    b"",
]


@st.composite
def image(draw: st.DrawFn) -> pb.Image:
    fmt = draw(st.one_of(st.sampled_from(list(range(5))), st.sampled_from([-1, 9, 2**31 - 1])))
    msg = pb.Image(format=fmt)
    if fmt == pb.IMAGE_FORMAT_RAW and draw(st.booleans()):
        w, h = draw(st.sampled_from([(2, 2), (0, 4), (-1, 2), (65536, 65536), (8, 8)]))
        n = draw(st.sampled_from([w * h * 3, 12, 0, 7])) if w > 0 and h > 0 else 12
        msg.width, msg.height = w, h
        msg.data = b"\x80" * max(0, min(n, 1 << 16))
        return msg
    msg.data = draw(st.one_of(st.sampled_from(IMAGE_BYTES), st.binary(max_size=256)))
    if draw(st.booleans()):
        msg.width, msg.height = draw(_int(32)), draw(_int(32))
    return msg


@st.composite
def tensor(draw: st.DrawFn) -> pb.Tensor:
    kind = draw(st.sampled_from(["latents", "latents", "random", "overflow", "residual"]))
    if kind == "latents":
        d = draw(st.sampled_from([100, 16, 99, 1]))
        n = draw(st.sampled_from([1, 2, 3, 257, 0]))
        arr = np.random.default_rng(n * d).standard_normal((n, d)).astype(np.float32)
        if n and draw(st.booleans()):
            arr[0, 0] = draw(st.sampled_from([np.nan, np.inf, 1e30]))
        dtype = draw(st.sampled_from([pb.DTYPE_FLOAT32, pb.DTYPE_FLOAT32, pb.DTYPE_FLOAT64]))
        if dtype == pb.DTYPE_FLOAT64:
            arr = arr.astype(np.float64)
        return pb.Tensor(dtype=dtype, shape=list(arr.shape), data=arr.tobytes())
    if kind == "overflow":
        shape = draw(
            st.sampled_from(
                [
                    [2**62, 2**62],
                    [2**31, 2**31, 2**31],
                    [2**63 - 1, 0],
                    [-1, 100],
                    [0] * 70,
                    [1] * 40,
                    [2**32 + 1, 100],
                    [3, -(2**63)],
                ]
            )
        )
        return pb.Tensor(dtype=draw(st.integers(0, 5)), shape=shape, data=b"")
    if kind == "residual":
        n = draw(st.sampled_from([1, 2]))
        trail = draw(st.sampled_from([(512, 4, 4), (3, 3), (512, 4, 5), (1,), (512, 4, 4, 1)]))
        arr = np.zeros((n, *trail), np.float32)
        return pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=list(arr.shape), data=arr.tobytes())
    shape = draw(st.lists(_int(64), max_size=4))
    return pb.Tensor(
        dtype=draw(st.integers(-2, 9)), shape=shape, data=draw(st.binary(max_size=512))
    )


# Field names whose strategies know the domain, so the checks behind the first are reached.
SPECIAL: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "model": lambda: st.one_of(st.sampled_from(MODELS * 4), _text()),
    "method": lambda: st.sampled_from(METHODS),
    "steps": lambda: st.one_of(st.integers(-2, 3), st.sampled_from(INT32_EDGES)),
    "restarts": lambda: st.one_of(st.integers(-2, 2), st.sampled_from(INT32_EDGES)),
    "samples": lambda: st.one_of(st.integers(-2, 64), st.sampled_from(INT32_EDGES)),
    "top_k": lambda: st.one_of(st.integers(-2, 6), st.sampled_from(INT32_EDGES)),
    "frames": lambda: st.one_of(st.integers(-2, 5), st.sampled_from(INT32_EDGES)),
    "seeds": lambda: st.lists(_int(64), max_size=5) | st.just(list(range(300))),
    "params": lambda: st.dictionaries(
        st.sampled_from(["ratio", "split", "layer", "space", "zz", "k" * 3000]),
        st.one_of(st.sampled_from(["0.1", "nan", "-1", "latent", "1e309", ""]), _text()),
        max_size=3,
    ),
}


@st.composite
def message(draw: st.DrawFn, desc: _d.Descriptor, depth: int = 0) -> Any:
    cls = message_factory.GetMessageClass(desc)
    if desc.full_name == "latentedit.v1.Tensor":
        return draw(tensor())
    if desc.full_name == "latentedit.v1.Image":
        return draw(image())
    msg = cls()
    for f in desc.fields:
        if not draw(st.integers(0, 3)):  # leave about a quarter unset
            continue
        with_value(draw, msg, f, depth)
    return msg


def _scalar(f: _d.FieldDescriptor) -> st.SearchStrategy[Any]:
    if f.name in SPECIAL and f.type != FD.TYPE_MESSAGE:
        inner = SPECIAL[f.name]()
        return inner
    if f.type == FD.TYPE_STRING:
        return _text()
    if f.type == FD.TYPE_BYTES:
        return st.binary(max_size=64)
    if f.type == FD.TYPE_BOOL:
        return st.booleans()
    if f.type in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        return _float()
    if f.type == FD.TYPE_ENUM:
        return st.one_of(st.integers(-1, 5), st.sampled_from([2**31 - 1, -(2**31)]))
    if f.type in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return _int(64)
    return _int(32)


def with_value(draw: st.DrawFn, msg: Any, f: _d.FieldDescriptor, depth: int) -> None:
    try:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            values = draw(SPECIAL["params"]())
            getattr(msg, f.name).update(values)
        elif f.type == FD.TYPE_MESSAGE:
            if depth > 3:
                return
            count = draw(st.sampled_from([1, 1, 2, 3, 40])) if _repeated(f) else 1
            items = [draw(message(f.message_type, depth + 1)) for _ in range(count)]
            if _repeated(f):
                getattr(msg, f.name).extend(items)
            else:
                getattr(msg, f.name).CopyFrom(items[0])
        elif _repeated(f):
            if f.name in SPECIAL:
                getattr(msg, f.name).extend(draw(SPECIAL[f.name]()))
            else:
                getattr(msg, f.name).extend(draw(st.lists(_scalar(f), max_size=4)))
        else:
            setattr(msg, f.name, draw(_scalar(f)))
    except (ValueError, TypeError, OverflowError):
        pass  # a value protobuf itself refuses cannot be sent anyway


def _repeated(f: _d.FieldDescriptor) -> bool:
    return bool(f.is_repeated)


def _latents(n: int, d: int) -> pb.Tensor:
    arr = np.random.default_rng(d).standard_normal((n, d)).astype(np.float32)
    return pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[n, d], data=arr.tobytes())


def templates() -> dict[str, Any]:
    """A valid (and cheap) request per RPC; most examples break one or two of its fields."""
    face = pb.Image(format=pb.IMAGE_FORMAT_PNG, data=PNG)
    invert = pb.InvertRequest(model="dcgan-faces", images=[face], steps=2, restarts=1)
    return {
        "ListModels": pb.ListModelsRequest(),
        "Generate": pb.GenerateRequest(model="shapes", seeds=pb.Seeds(seeds=[1])),
        "Edit": pb.EditRequest(
            model="dcgan-faces",
            latents=_latents(1, 100),
            edits=[pb.DirectionStrength(direction="fz_dir", strength=1.0)],
        ),
        "ConditionalEdit": pb.ConditionalEditRequest(
            model="dcgan-faces",
            latents=_latents(1, 100),
            direction="fz_dir",
            conditions=["fz_cond"],
        ),
        "Invert": invert,
        "InvertStream": invert,
        "DiscoverDirections": pb.DiscoverDirectionsRequest(
            model="shapes", method="sefa", top_k=2, name_prefix="fzd"
        ),
        "ListDirections": pb.ListDirectionsRequest(model="shapes"),
        "GetDirection": pb.GetDirectionRequest(id="shapes/fz_dir"),
        "DeleteDirection": pb.DeleteDirectionRequest(id="shapes/fz_gone"),
        "PutDirection": pb.PutDirectionRequest(
            model="shapes", name="fz_put", vector=_latents(1, 16)
        ),
        "Score": pb.ScoreRequest(model="shapes", latents=_latents(2, 16)),
        "Analyze": pb.AnalyzeRequest(model="shapes", directions=["fz_dir"], samples=8),
        # jobs: a well-formed id of no job (NOT_FOUND); mutations break the id or the model
        "WatchJob": pb.WatchJobRequest(job_id="0" * 32),
        "GetJob": pb.GetJobRequest(job_id="0" * 32),
        "CancelJob": pb.CancelJobRequest(job_id="0" * 32, wait_seconds=0.1),
        "ListJobs": pb.ListJobsRequest(model="shapes", limit=5),
        # learned
        "Evaluate": pb.EvaluateRequest(
            model="shapes", directions=["fz_dir", "fz_cond"], samples=8, strength=1.0
        ),
    }


def prepare(target: str) -> None:
    """The directions the templates name."""
    from latentedit.client import Client

    with Client(target, timeout=60) as c:
        for model, d in (("dcgan-faces", 100), ("shapes", 16)):
            c.put_direction(model, "fz_dir", np.eye(d)[0])
            c.put_direction(model, "fz_cond", np.eye(d)[1])


@st.composite
def mutated(draw: st.DrawFn, template: Any) -> Any:
    """``template`` with one to three fields (top level or one level down) redrawn."""
    msg = type(template)()
    msg.CopyFrom(template)
    if not msg.DESCRIPTOR.fields:
        return msg
    for _ in range(draw(st.integers(1, 3))):
        target = msg
        fields = list(msg.DESCRIPTOR.fields)
        f = draw(st.sampled_from(fields))
        if (
            f.type == FD.TYPE_MESSAGE
            and not f.is_repeated
            and f.message_type.full_name not in ("latentedit.v1.Tensor", "latentedit.v1.Image")
            and draw(st.booleans())
        ):
            target = getattr(msg, f.name)
            inner = list(f.message_type.fields)
            if not inner:
                continue
            f = draw(st.sampled_from(inner))
        target.ClearField(f.name)
        with_value(draw, target, f, 1)
    return msg
