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
