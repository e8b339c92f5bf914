"""latentedit.validate: the checks the gateway runs before queueing (and workers again)."""

from __future__ import annotations

import numpy as np
import pytest

from latentedit import validate
from latentedit.codec import latents_from, to_tensor
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


def _raises(words: str, exc: type[Exception] = InvalidArgument) -> pytest.RaisesExc[Exception]:
    """pytest.raises(exc) whose message must match ``words`` (a regex; '^' anchors the field)."""
    return pytest.raises(exc, match=words)


def test_names_accept_the_whole_alphabet_and_name_the_field() -> None:
    for ok in ["a", "A.b-c_9", "9lives", "a" * 128]:
        assert validate.name(ok) == ok
    with _raises("^name_prefix 'a b' must be"):
        validate.name("a b", "name_prefix")


def test_names_with_a_trailing_newline_are_refused() -> None:
    with _raises("must be 1-128"):
        validate.name("smile\n")


def test_direction_names_name_the_field() -> None:
    with _raises("^edits.direction '' must be"):
        validate.direction_names([""], "m", "edits.direction")
    with _raises("^direction '/a' belongs to model '', not 'm'"):
        validate.direction_names(["/a"], "m")
    with _raises("^direction 'x/y' must be"):  # "m/x/y" -> name "x/y"
        validate.direction_names(["m/x/y"], "m")


def test_sweep_edges() -> None:
    np.testing.assert_array_equal(
        validate.sweep(pb.Sweep(frames=1, start=2, stop=5), 1, LIMITS), [2]
    )
    assert len(validate.sweep(pb.Sweep(frames=64), 16, LIMITS)) == 64  # exactly 1024 images
    with _raises(r"sweep\.frames: -1; allowed 0\.\.64"):
        validate.sweep(pb.Sweep(frames=-1), 1, LIMITS)
    with _raises("sweep.start and sweep.stop must be finite"):
        validate.sweep(pb.Sweep(stop=float("-inf")), 1, LIMITS)


def test_finite_and_seeds() -> None:
    assert validate.finite(2.5, "x") == 2.5
    with _raises("^strength must be finite, got nan"):
        validate.finite(float("nan"), "strength")
    assert validate.seeds([5, 5, 0], LIMITS) == [5, 5, 0]
    with _raises(r"seeds: 0 given; allowed 1\.\.256"):
        validate.seeds([], LIMITS)
    with _raises(r"seeds: 257 given"):
        validate.seeds(list(range(257)), LIMITS)


def test_generate() -> None:
    assert validate.generate(pb.GenerateRequest(seeds=pb.Seeds(seeds=[1, 2])), 4, LIMITS) == [1, 2]
    z = validate.generate(pb.GenerateRequest(latents=Z), 4, LIMITS)
    assert isinstance(z, np.ndarray) and z.shape == (2, 4)
    with _raises("generate needs seeds or latents"):
        validate.generate(pb.GenerateRequest(model="m"), 4, LIMITS)
    empty = pb.GenerateRequest()
    empty.seeds.SetInParent()
    with _raises("seeds: 0 given"):
        validate.generate(empty, 4, LIMITS)
    with _raises(r"^latents: expected shape \(N, 5\)"):
        validate.generate(pb.GenerateRequest(latents=Z), 5, LIMITS)


def test_edit_checks_modes_directions_and_extras() -> None:
    def req(**kw: object) -> pb.EditRequest:
        edits = kw.pop("edits", [pb.DirectionStrength(direction="a", strength=1)])
        return pb.EditRequest(model="m", latents=Z, edits=edits, **kw)  # type: ignore[arg-type]

    absolute = pb.DirectionStrength(direction="m/b", mode=pb.EDIT_MODE_ABSOLUTE)
    assert validate.edit(req(edits=[absolute]), 4, LIMITS)[1] == ["b"]
    with _raises("^edits.mode: unknown mode 7"):
        validate.edit(req(edits=[pb.DirectionStrength(direction="a", mode=7)]), 4, LIMITS)  # type: ignore[arg-type]
    with _raises("^edits.direction 'n/a' belongs to model 'n'"):
        validate.edit(req(edits=[pb.DirectionStrength(direction="n/a")]), 4, LIMITS)
    with _raises("^extras.tuning_ids: 1 ids for 2 latents"):
        validate.edit(req(extras=pb.CodeExtras(tuning_ids=["t"])), 4, LIMITS)
    with _raises("^sweep.frames"):
        validate.edit(req(sweep=pb.Sweep(frames=100)), 4, LIMITS)


def test_extras() -> None:
    assert validate.extras(pb.CodeExtras(), 2) == (None, ["", ""])
    residual = np.ones((2, 3, 4), np.float32)
    got, ids = validate.extras(
        pb.CodeExtras(residual=to_tensor(residual), tuning_ids=["t1", ""]), 2
    )
    assert got is not None and got.shape == (2, 3, 4) and ids == ["t1", ""]
    bad = [
        (pb.CodeExtras(residual=to_tensor(np.ones((3, 4), np.float32))), "with 2 rows"),
        (pb.CodeExtras(residual=to_tensor(np.ones(2, np.float32))), "with 2 rows"),
        (pb.CodeExtras(residual=to_tensor(np.ones((2, 4), np.uint8))), "got uint8"),
        (pb.CodeExtras(residual=to_tensor(np.full((2, 4), np.inf, np.float32))), "non-finite"),
        (pb.CodeExtras(residual=pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[2, 2])), "needs 16"),
        (pb.CodeExtras(tuning_ids=["ok", "no/slash"]), "malformed id 'no/slash'"),
    ]
    for msg, words in bad:
        with pytest.raises(InvalidArgument, match=words) as err:
            validate.extras(msg, 2)
        assert err.value.message.startswith("extras.")


def test_conditional_edit_defaults_and_refusals() -> None:
    def req(**kw: object) -> pb.ConditionalEditRequest:
        return pb.ConditionalEditRequest(model="m", latents=Z, **kw)  # type: ignore[arg-type]

    z, names, strength, ts = validate.conditional_edit(req(direction="a"), 4, LIMITS)
    assert z.shape == (2, 4) and names == ["a"] and ts.tolist() == [1.0]
    assert strength == 1.0  # 0 (unset) -> the default 1
    assert validate.conditional_edit(req(direction="a", strength=-2), 4, LIMITS)[2] == -2.0
    ok = req(direction="a", conditions=["b", "c", "d"])  # 3 conditions in 4 dimensions
    assert validate.conditional_edit(ok, 4, LIMITS)[1] == ["a", "b", "c", "d"]
    with _raises("^direction: the primary direction is required"):
        validate.conditional_edit(req(conditions=["b"]), 4, LIMITS)
    with _raises("^strength must be finite"):
        validate.conditional_edit(req(direction="a", strength=float("nan")), 4, LIMITS)
    with _raises("^direction 'x/b' belongs to model 'x'"):
        validate.conditional_edit(req(direction="a", conditions=["x/b"]), 4, LIMITS)


def test_invert_budgets_and_headers() -> None:
    image = pb.Image(format=pb.IMAGE_FORMAT_RAW, data=b"\0" * 12, width=2, height=2)
    methods = ["optimize", "encoder"]
    ok = pb.InvertRequest(
        images=[image] * 32, method="encoder", steps=5000, restarts=64, target_psnr=100
    )
    assert validate.invert(ok, methods, LIMITS) == "encoder"
    with _raises("method 'optimize' is not available"):
        validate.invert(pb.InvertRequest(images=[image]), ["encoder"], LIMITS)
    huge = pb.Image(format=pb.IMAGE_FORMAT_RAW, data=b"\0" * 3, width=4097, height=4096)
    for req, words in [
        (pb.InvertRequest(images=[image] * 33), r"^images: 33 given; allowed 1\.\.32"),
        (pb.InvertRequest(images=[image], steps=5001), "^steps: 5001"),
        (pb.InvertRequest(images=[image], restarts=65), "^restarts: 65"),
        (pb.InvertRequest(images=[image], restarts=-1), "^restarts: -1"),
        (pb.InvertRequest(images=[image], prior_weight=float("inf")), "^prior_weight"),
        (pb.InvertRequest(images=[image], target_psnr=101), "^target_psnr"),
        (pb.InvertRequest(images=[image], target_psnr=float("nan")), "^target_psnr"),
        (pb.InvertRequest(images=[image, huge]), r"^images\[1\]: 4097x4096 pixels exceeds"),
    ]:
        with _raises(words):
            validate.invert(req, methods, LIMITS)


def test_discover_interfacegan_data_and_prefix() -> None:
    methods = ["sefa", "interfacegan"]
    z = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)

    def ifg(rows: int = 20, scores: np.ndarray | None = None, **kw: object) -> tuple:  # type: ignore[type-arg]
        s = np.arange(rows, dtype=np.float64) if scores is None else scores
        req = pb.DiscoverDirectionsRequest(
            model="m", method="interfacegan", latents=to_tensor(z[:rows]), scores=to_tensor(s), **kw
        )  # type: ignore[arg-type]
        return validate.discover(req, methods, 4, [], LIMITS)

    assert ifg(name_prefix="smile") == ("interfacegan", 4, "smile")  # default top_k min(5, d)
    assert ifg(top_k=99)[1] == 99  # interfacegan finds one direction: top_k is not checked
    with _raises("at least 20 scored latents, got 19"):
        ifg(rows=19)
    with _raises("^scores: need 20 finite values, got 21"):
        ifg(scores=np.zeros(21))
    with _raises("^scores: need 20 finite values"):
        ifg(scores=np.full(20, np.nan))
    with _raises("^name_prefix 'a b' must be"):
        ifg(name_prefix="a b")
    with _raises("^params.split: 0.99 outside"):
        ifg(params={"split": "0.99"})
    with _raises("either latents"):
        validate.discover(
            pb.DiscoverDirectionsRequest(
                model="m", method="interfacegan", scorer="y", latents=to_tensor(z)
            ),
            methods,
            4,
            ["y"],
            LIMITS,
        )
    for req, words in [
        (pb.DiscoverDirectionsRequest(method="ganspace"), "method 'ganspace' is not available"),
        (pb.DiscoverDirectionsRequest(top_k=-1), r"^top_k: -1; allowed 1\.\.4"),
        (pb.DiscoverDirectionsRequest(samples=100_001), "^samples: 100001"),
    ]:
        with _raises(words):
            validate.discover(req, methods, 4, [], LIMITS)


def test_params() -> None:
    assert validate.param("layer", "main.3") == "main.3"
    assert validate.param("space", "anything") == "anything"
    assert validate.param("ratio", "0.5") == 0.5 and validate.param("split", "0.05") == 0.05
    with _raises("^params.ratio: 'abc' is not a number"):
        validate.param("ratio", "abc")
    with _raises("^params.ratio: nan outside"):
        validate.param("ratio", "nan")
    with _raises("known: \\['layer', 'layers', 'ratio', 'space', 'split'\\]"):
        validate.param("ratios", "0.1")


def test_scorer_names() -> None:
    assert validate.scorer_names([], ["a", "b"]) == ["a", "b"]
    assert validate.scorer_names(["b"], ["a", "b"]) == ["b"]
    with _raises("this model has no scorers"):
        validate.scorer_names([], [])
    with _raises(r"unknown scorer\(s\) \['c'\]; this model has \['a', 'b'\]", NotFound):
        validate.scorer_names(["a", "c"], ["a", "b"])
    with _raises("each scorer may appear once"):
        validate.scorer_names(["a", "a"], ["a", "b"])


def test_score() -> None:
    image = pb.Image(format=pb.IMAGE_FORMAT_RAW, data=b"\0" * 12, width=2, height=2)
    assert validate.score(pb.ScoreRequest(latents=Z), 4, ["a"], LIMITS) == ["a"]
    images = pb.ScoreRequest(images=pb.ImageList(images=[image]), scorers=["a"])
    assert validate.score(images, 4, ["a", "b"], LIMITS) == ["a"]
    for req, words in [
        (pb.ScoreRequest(), "score needs latents or images"),
        (pb.ScoreRequest(images=pb.ImageList()), r"^images: 0; allowed 1\.\.256"),
        (
            pb.ScoreRequest(images=pb.ImageList(images=[image, pb.Image(data=b"x")])),
            r"^images\[1\]: bytes are not a decodable image",
        ),
        (pb.ScoreRequest(latents=to_tensor(np.zeros((1, 3), np.float32))), r"^latents: expected"),
    ]:
        with _raises(words):
            validate.score(req, 4, ["a"], LIMITS)


def test_analyze() -> None:
    req = pb.AnalyzeRequest(model="m", directions=["a", "m/b"])
    assert validate.analyze(req, ["s"], LIMITS) == (["a", "b"], ["s"], 64, 3.0)
    custom = pb.AnalyzeRequest(model="m", directions=["a"], samples=2, strength=0.5)
    assert validate.analyze(custom, ["s"], LIMITS)[2:] == (2, 0.5)
    for kw, words in [
        ({"directions": []}, r"^directions: 0; allowed 1\.\.64"),
        ({"directions": [f"d{i}" for i in range(65)]}, "^directions: 65"),
        ({"directions": ["a", "m/a"]}, "each direction may appear once"),
        ({"directions": ["x/a"]}, "^directions 'x/a' belongs to model 'x'"),
        ({"directions": ["a"], "samples": 1}, r"^samples: 1; allowed 2\.\.4096"),
        ({"directions": ["a"], "samples": 4097}, "^samples: 4097"),
        ({"directions": ["a"], "strength": -1}, "^strength must be > 0"),
        ({"directions": ["a"], "strength": float("inf")}, "^strength must be finite"),
        ({"directions": ["a"], "scorers": ["t"]}, r"unknown scorer\(s\)"),
    ]:
        exc = NotFound if "scorer" in words else InvalidArgument
        with _raises(words, exc):
            validate.analyze(pb.AnalyzeRequest(model="m", **kw), ["s"], LIMITS)  # type: ignore[arg-type]


def test_direction_id_and_put_edges() -> None:
    assert validate.direction_id("m/a.b") == ("m", "a.b")
    for bad, words in [
        ("/a", "^id '/a' must be '<model>/<name>'"),
        ("m/", "^id '' must be 1-128"),
        ("m/a/b", "^id 'a/b' must be 1-128"),
    ]:
        with _raises(words):
            validate.direction_id(bad)
    with _raises("^direction '' must be"):
        validate.direction_id("m/", "direction")
    vec = np.array([0, 3, 0, 4], np.float32)
    name, v = validate.put_direction(pb.PutDirectionRequest(name="a", vector=to_tensor(vec)), 4)
    assert name == "a" and v.dtype == np.float32
    np.testing.assert_array_equal(v, vec)  # not normalised here: the store does it
    for req, words in [
        (pb.PutDirectionRequest(name="a b", vector=to_tensor(vec)), "^name 'a b' must be"),
        (pb.PutDirectionRequest(name="a", vector=to_tensor(vec[:3])), r"^vector: expected shape"),
        (
            pb.PutDirectionRequest(name="a", vector=to_tensor(np.ones((2, 4), np.float32))),
            r"^vector: 2 rows; allowed 1\.\.1",
        ),
        (
            pb.PutDirectionRequest(name="a", vector=to_tensor(np.full(4, np.nan, np.float32))),
            "^vector: 4 non-finite",
        ),
    ]:
        with _raises(words):
            validate.put_direction(req, 4)


def test_door_checks() -> None:
    """Residual trailing shape, seeds, enum values, long names, overflowing shapes."""
    Bad = InvalidArgument
    residual = to_tensor(np.zeros((2, 3, 3), np.float32))
    with pytest.raises(Bad, match=r"of shape \(2, 512, 4, 4\)"):
        validate.extras(pb.CodeExtras(residual=residual), 2, (512, 4, 4))
    with pytest.raises(Bad, match="takes no residual"):
        validate.extras(pb.CodeExtras(residual=residual), 2, ())
    ok = to_tensor(np.zeros((2, 512, 4, 4), np.float32))
    assert validate.extras(pb.CodeExtras(residual=ok), 2, (512, 4, 4))[0] is not None
    with pytest.raises(Bad, match="seed"):
        validate.seed(-1)
    with pytest.raises(Bad, match="image_format"):
        validate.image_format(99)
    with pytest.raises(Bad) as err:
        validate.name("x" * 16384)
    assert len(err.value.message) < 400
    for shape in ([2**62, 2**62], [2**63 - 1, 0], [0] * 70):
        with pytest.raises(Bad, match="latents"):
            latents_from(pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=shape), 4, 10)
