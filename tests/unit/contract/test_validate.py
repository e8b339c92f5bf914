"""latentedit.validate: the checks the gateway runs before queueing (and workers again)."""

from __future__ import annotations

import numpy as np
import pytest

from latentedit import validate
from latentedit.codec import to_tensor
from latentedit.errors import InvalidArgument, NotFound
from latentedit.v1 import latentedit_pb2 as pb

LIMITS = validate.Limits()
Z = to_tensor(np.zeros((2, 4), np.float32))


def test_names() -> None:
    assert validate.name("sefa_00") == "sefa_00"
    for bad in ["", "-x", "a b", "x/y", "é", "a" * 129]:
        with pytest.raises(InvalidArgument, match="must be 1-128"):
            validate.name(bad)


def test_direction_names_resolve_and_check_the_model() -> None:
    assert validate.direction_names(["a", "m/b"], "m") == ["a", "b"]
    with pytest.raises(InvalidArgument, match="belongs to model 'other'"):
        validate.direction_names(["other/a"], "m")


def test_sweep() -> None:
    np.testing.assert_array_equal(validate.sweep(pb.Sweep(), 3, LIMITS), [1.0])
    np.testing.assert_allclose(
        validate.sweep(pb.Sweep(frames=3, start=-1, stop=1), 3, LIMITS), [-1, 0, 1]
    )
    with pytest.raises(InvalidArgument, match=r"sweep\.frames"):
        validate.sweep(pb.Sweep(frames=65), 1, LIMITS)
    with pytest.raises(InvalidArgument, match="finite"):
        validate.sweep(pb.Sweep(frames=2, start=float("nan")), 1, LIMITS)
    with pytest.raises(InvalidArgument, match="at most 1024"):
        validate.sweep(pb.Sweep(frames=64), 17, LIMITS)


def test_edit() -> None:
    req = pb.EditRequest(
        model="m", latents=Z, edits=[pb.DirectionStrength(direction="a", strength=2)]
    )
    z, names, strengths, ts = validate.edit(req, 4, LIMITS)
    assert (
        z.shape == (2, 4)
        and names == ["a"]
        and strengths.tolist() == [2.0]
        and ts.tolist() == [1.0]
    )
    with pytest.raises(InvalidArgument, match="at least one direction"):
        validate.edit(pb.EditRequest(model="m", latents=Z), 4, LIMITS)
    twice = pb.EditRequest(model="m", latents=Z, edits=[pb.DirectionStrength(direction="a")] * 2)
    with pytest.raises(InvalidArgument, match="once"):
        validate.edit(twice, 4, LIMITS)
    nan = pb.EditRequest(
        model="m", latents=Z, edits=[pb.DirectionStrength(direction="a", strength=float("inf"))]
    )
    with pytest.raises(InvalidArgument, match="strength"):
        validate.edit(nan, 4, LIMITS)


def test_conditional_edit() -> None:
    req = pb.ConditionalEditRequest(model="m", latents=Z, direction="a", conditions=["b"])
    _, names, strength, _ = validate.conditional_edit(req, 4, LIMITS)
    assert names == ["a", "b"] and strength == 1.0
    with pytest.raises(InvalidArgument, match="distinct"):
        validate.conditional_edit(
            pb.ConditionalEditRequest(model="m", latents=Z, direction="a", conditions=["a"]),
            4,
            LIMITS,
        )
    with pytest.raises(InvalidArgument, match="no freedom"):
        validate.conditional_edit(
            pb.ConditionalEditRequest(model="m", latents=Z, direction="a", conditions=list("bcde")),
            4,
            LIMITS,
        )


def test_invert() -> None:
    image = pb.Image(format=pb.IMAGE_FORMAT_RAW, data=b"\0" * 12, width=2, height=2)
    assert validate.invert(pb.InvertRequest(images=[image]), ["optimize"], LIMITS) == "optimize"
    for req, words in [
        (pb.InvertRequest(images=[image], method="magic"), "not available"),
        (pb.InvertRequest(), "images: 0"),
        (pb.InvertRequest(images=[image], steps=-1), "steps"),
        (pb.InvertRequest(images=[image], prior_weight=-1), "prior_weight"),
        (pb.InvertRequest(images=[pb.Image(data=b"junk")]), "images\\[0\\]"),
    ]:
        with pytest.raises(InvalidArgument, match=words):
            validate.invert(req, ["optimize"], LIMITS)


def test_discover_and_params() -> None:
    req = pb.DiscoverDirectionsRequest(model="m", method="sefa", top_k=3)
    assert validate.discover(req, ["sefa", "interfacegan"], 4, [], LIMITS) == ("sefa", 3, "sefa")
    with pytest.raises(InvalidArgument, match="top_k"):
        validate.discover(pb.DiscoverDirectionsRequest(model="m", top_k=5), ["sefa"], 4, [], LIMITS)
    with pytest.raises(InvalidArgument, match="either latents"):
        validate.discover(
            pb.DiscoverDirectionsRequest(model="m", method="interfacegan"),
            ["interfacegan"],
            4,
            [],
            LIMITS,
        )
    with pytest.raises(NotFound, match="unknown scorer"):
        validate.discover(
            pb.DiscoverDirectionsRequest(model="m", method="interfacegan", scorer="x"),
            ["interfacegan"],
            4,
            ["y"],
            LIMITS,
        )
    ok = pb.DiscoverDirectionsRequest(model="m", method="interfacegan", scorer="y")
    assert validate.discover(ok, ["interfacegan"], 4, ["y"], LIMITS)[2] == "y"
    assert validate.param("ratio", "0.1") == 0.1
    with pytest.raises(InvalidArgument, match=r"params.ratio: 2.0 outside"):
        validate.param("ratio", "2")
    with pytest.raises(InvalidArgument, match="unknown key"):
        validate.param("nope", "1")


def test_direction_id_and_put() -> None:
    assert validate.direction_id("m/a") == ("m", "a")
    with pytest.raises(InvalidArgument, match="'<model>/<name>'"):
        validate.direction_id("a")
    with pytest.raises(InvalidArgument, match="non-zero"):
        validate.put_direction(
            pb.PutDirectionRequest(name="a", vector=to_tensor(np.zeros(4, np.float32))), 4
        )
