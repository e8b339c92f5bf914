"""latentedit.errors (one class per status, both ways) and latentedit.keys."""

from __future__ import annotations

import grpc
import pytest

from latentedit import errors, keys


@pytest.mark.parametrize(
    "cls",
    [
        errors.InvalidArgument,
        errors.NotFound,
        errors.ResourceExhausted,
        errors.DeadlineExceeded,
        errors.FailedPrecondition,
        errors.Unavailable,
        errors.Cancelled,
        errors.Internal,
    ],
)
def test_each_error_maps_to_one_status_and_back(cls: type[errors.LatentEditError]) -> None:
    err = errors.error_for(cls.code, "why")
    assert type(err) is cls and err.message == "why"
    assert type(errors.error_for(cls.code.value[0], "why")) is cls  # the int a JobError carries


def test_unknown_status_keeps_its_code() -> None:
    err = errors.error_for(grpc.StatusCode.DATA_LOSS, "lost")
    assert type(err) is errors.LatentEditError and err.code == grpc.StatusCode.DATA_LOSS
    assert errors.error_for(999, "x").code == grpc.StatusCode.UNKNOWN


def test_direction_ids() -> None:
    assert keys.split_direction_id("faces/smile") == ("faces", "smile")
    assert keys.split_direction_id("smile", "faces") == ("faces", "smile")
    assert keys.split_direction_id("a/b/c") == ("a", "b/c")
    assert keys.job_stream("m") != keys.job_stream("n")


def test_the_table_is_one_to_one() -> None:
    classes = [
        errors.InvalidArgument,
        errors.NotFound,
        errors.ResourceExhausted,
        errors.DeadlineExceeded,
        errors.Unavailable,
        errors.Cancelled,
        errors.Internal,
    ]
    assert len({cls.code for cls in classes}) == len(classes)
    assert errors.LatentEditError.code not in {cls.code for cls in classes}
    for cls in classes:
        err = cls("msg")
        assert isinstance(err, errors.LatentEditError) and str(err) == "msg"
        assert err.code == cls.code  # the instance travels as its class's status


def test_ok_and_unknown_codes_stay_base_errors() -> None:
    for code in (grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN, grpc.StatusCode.ABORTED, 10, 0):
        err = errors.error_for(code, "m")
        assert type(err) is errors.LatentEditError
        expected = (
            code
            if isinstance(code, grpc.StatusCode)
            else next(c for c in grpc.StatusCode if c.value[0] == code)
        )
        assert err.code == expected
    # a code set on one instance does not leak into the class or other instances
    assert errors.LatentEditError("x").code == grpc.StatusCode.UNKNOWN


@pytest.mark.parametrize(
    ("direction", "default", "expected"),
    [
        ("faces/smile", "", ("faces", "smile")),
        ("faces/smile", "other", ("faces", "smile")),  # an explicit model wins
        ("smile", "", ("", "smile")),
        ("smile", "faces", ("faces", "smile")),
        ("a/b/c", "m", ("a", "b/c")),  # only the first '/' separates
        ("/smile", "m", ("", "smile")),
        ("faces/", "m", ("faces", "")),
        ("", "m", ("m", "")),
    ],
)
def test_split_direction_id(direction: str, default: str, expected: tuple[str, str]) -> None:
    assert keys.split_direction_id(direction, default) == expected


def test_key_names_are_prefixed_and_distinct() -> None:
    names = [
        keys.job_stream("m"),
        keys.reply_stream("m"),
        keys.worker_heartbeat("m"),
        keys.directions("m"),
        keys.direction_versions("m"),
        keys.model_alive("m"),
        keys.cancelled("m"),
        keys.tuning("m", "t"),
        keys.MODELS,
    ]
    assert len(set(names)) == len(names)
    assert all(n.startswith(keys.PREFIX + ":") for n in names)
    assert keys.tuning("m", "t") != keys.tuning("m", "u") != keys.tuning("n", "t")
