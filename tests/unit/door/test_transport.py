"""The SDK's channel settings: targets, service config, TLS arguments, its own checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latentedit.client import TLS, InvalidArgument
from latentedit.client import _transport as tr
from latentedit.client._base import ClientBase
from latentedit.client.types import Edited, Generated


def test_targets() -> None:
    assert tr.channel_target(["h:1"]) == "h:1"
    assert tr.channel_target(["dns:///gw:1"]) == "dns:///gw:1"
    assert tr.channel_target(["127.0.0.1:1", "localhost:2"]) == "ipv4:127.0.0.1:1,127.0.0.1:2"
    assert tr.channel_target(["[::1]:1", "::2:3"]) == "ipv6:[::1]:1,[::2]:3"
    with pytest.raises(ValueError, match="dns:///"):
        tr.channel_target(["a.example:1", "b.example:1"])


def test_service_config() -> None:
    config = json.loads(tr.service_config(3))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    (method,) = config["methodConfig"]
    names = {n["method"] for n in method["name"]}
    assert "Generate" in names and "DiscoverDirections" not in names
    assert method["retryPolicy"]["maxAttempts"] == 4
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert "methodConfig" not in json.loads(tr.service_config(0))


def test_tls_arguments() -> None:
    assert tr.tls_settings(None) is None and tr.tls_settings(False) is None
    assert tr.tls_settings(True) == TLS()
    assert tr.tls_settings("ca.pem") == TLS(ca="ca.pem")
    with pytest.raises(ValueError, match="together"):
        tr.tls_settings(TLS(cert="c.pem"))


def test_the_sdk_checks_what_it_can() -> None:
    for bad in ("abc", None, [], np.zeros((0, 4)), [["x"]]):
        with pytest.raises(InvalidArgument, match="latents"):
            ClientBase._op_edit("m", bad, {"a": 1.0}, None, "png", "relative")
    with pytest.raises(InvalidArgument, match="no pixels"):
        ClientBase._op_invert("m", [np.zeros((0, 5, 3), np.uint8)], "optimize", 0, 0, 0, 0.0, 0.0)
    with pytest.raises(InvalidArgument, match="image_format"):
        ClientBase._op_generate("m", [1], None, "tiff")
    with pytest.raises(InvalidArgument):
        ClientBase._op_edit("m", np.zeros((1, 4)), {"a": "strong"}, None, "png", "relative")


def test_results_are_latents_and_scores_split() -> None:
    z = np.arange(12, dtype=np.float32).reshape(3, 4)
    g = Generated("v", z, [])
    op = ClientBase._op_generate("m", None, g, "png")
    assert list(op.request.latents.shape) == [3, 4]
    e = Edited("v", np.zeros((3, 2, 4), np.float32), [], np.ones(2), [])
    assert list(
        ClientBase._op_edit("m", e, {"a": 1.0}, None, "png", "relative").request.latents.shape
    ) == [6, 4]
    ops = ClientBase._ops_score("m", np.zeros((600, 4)), None, ())
    assert [list(o.request.latents.shape) for o in ops] == [[256, 4], [256, 4], [88, 4]]
