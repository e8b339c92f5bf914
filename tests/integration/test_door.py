"""The door, through the SDK: API keys, per-key models / rate / in-flight cap, direction
owners, TLS and mutual TLS (sync and async), request budgets refused before Redis.

Each test starts its own gateway child (``latentedit gateway --auth-file ... --tls-...``)
on the shared stack's Redis, so the shared gateway stays open for the other tests.
"""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from door_helpers import Certs, Gateway, make_certs, start_gateway
from PIL import Image
from redis import Redis

from latentedit.client import (
    TLS,
    AsyncClient,
    Client,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from latentedit.deploy.stack import Stack
from latentedit.server.auth_keys import KeyRing

MODEL = "dcgan-faces"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A key file; ``alice`` is made through the CLI, the rest through KeyRing."""
    path = tmp_path_factory.mktemp("door") / "keys.toml"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "latentedit.deploy.cli",
            "keys",
            "add",
            "alice",
            "--file",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    alice = out.stdout.strip().splitlines()[-1]
    assert alice.startswith("le_") and alice not in path.read_text()  # stored hashed
    ring = KeyRing.load(path)
    made = {
        "alice": alice,
        "bob": ring.add("bob"),
        "shapes_only": ring.add("shapes_only", models=["shapes"]),
        "slow": ring.add("slow", rate=2.0, burst=2),
        "one_at_a_time": ring.add("one_at_a_time", max_inflight=1),
        "root": ring.add("root", admin=True),
    }
    ring.save(path)
    return path, made


@pytest.fixture(scope="module")
def door(
    stack: Stack, keys: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    path, made = keys
    gw = start_gateway(
        stack.redis_url,
        tmp_path_factory.mktemp("door-logs"),
        ["--auth-file", str(path)],
        ready_key=made["root"],
    )
    yield gw
    gw.stop()


def test_keys_models_rate_and_inflight(door: Gateway, keys: tuple[Path, dict[str, str]]) -> None:
    _, k = keys
    with Client(door.target, timeout=60) as anonymous, pytest.raises(Unauthenticated, match="key"):
        anonymous.models()
    with (
        Client(door.target, api_key="le_wrong", timeout=60) as wrong,
        pytest.raises(Unauthenticated, match="unknown API key"),
    ):
        wrong.generate(MODEL, seeds=[1])
    with Client(door.target, api_key=k["alice"], timeout=60) as alice:
        assert alice.generate(MODEL, seeds=[1]).latents.shape == (1, 100)
    with Client(door.target, api_key=k["shapes_only"], timeout=60) as limited:
        assert [m.name for m in limited.models()] == ["shapes"]  # listing shows what it may use
        assert limited.generate("shapes", seeds=[1]).latents.shape == (1, 16)
        with pytest.raises(PermissionDenied, match="may not use model 'dcgan-faces'"):
            limited.generate(MODEL, seeds=[1])
        with pytest.raises(PermissionDenied):
            limited.get_direction(f"{MODEL}/anything")
    with Client(door.target, api_key=k["slow"], timeout=60) as slow:
        codes = []
        for _ in range(6):  # burst of 2, then 2 per second: calls back to back run out
            try:
                slow.models()
                codes.append("ok")
            except ResourceExhausted as err:
                assert "rate of 2 requests/s" in err.message
                codes.append("limited")
        assert codes[:2] == ["ok", "ok"] and "limited" in codes
        time.sleep(1.0)
        slow.models()  # tokens come back


async def test_inflight_cap(door: Gateway, keys: tuple[Path, dict[str, str]]) -> None:
    _, k = keys
    face = np.zeros((64, 64, 3), np.uint8)
    async with AsyncClient(door.target, api_key=k["one_at_a_time"], timeout=120) as c:
        slow = asyncio.create_task(c.invert(MODEL, [face], steps=400, restarts=1))
        await asyncio.sleep(0.5)
        with pytest.raises(ResourceExhausted, match="max_inflight 1"):
            await c.generate(MODEL, seeds=[1])
        await slow
        assert (await c.generate(MODEL, seeds=[1])).latents.shape == (1, 100)  # freed


def test_direction_owners(door: Gateway, keys: tuple[Path, dict[str, str]]) -> None:
    _, k = keys
    v = np.arange(100.0) - 40
    with (
        Client(door.target, api_key=k["alice"], timeout=120) as alice,
        Client(door.target, api_key=k["bob"], timeout=120) as bob,
        Client(door.target, api_key=k["root"], timeout=120) as root,
    ):
        mine = alice.put_direction(MODEL, "door_owned", v)
        assert mine.owner == "alice"
        assert bob.get_direction(mine.id).owner == "alice"  # the SDK shows whose it is
        assert alice.put_direction(MODEL, "door_owned", -v).version == mine.version + 1
        with pytest.raises(PermissionDenied, match="belongs to key 'alice'"):
            bob.put_direction(MODEL, "door_owned", v)
        with pytest.raises(PermissionDenied, match="belongs to key 'alice'"):
            bob.delete_direction(mine.id)
        found = alice.discover(MODEL, "sefa", top_k=1, name_prefix="door_sefa")
        with pytest.raises(PermissionDenied):
            bob.discover(MODEL, "sefa", top_k=1, name_prefix="door_sefa")
        # Others may read and use it.
        assert bob.get_direction(mine.id).vector is not None
        z = bob.generate(MODEL, seeds=[5])
        edited = bob.edit(MODEL, z, {"door_owned": 1.0})
        assert edited.latents.shape == (1, 1, 100)
        # An admin key may overwrite and delete.
        assert root.put_direction(MODEL, "door_owned", v).version == mine.version + 2
        assert root.delete_direction(mine.id) is True
        assert root.delete_direction(found[0].id) is True


def test_sighup_reloads_the_key_file_and_a_broken_one_changes_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    path = tmp_path / "keys.toml"
    ring = KeyRing()
    first = ring.add("first")
    ring.save(path)
    gw = start_gateway(stack.redis_url, tmp_path / "logs", ["--auth-file", str(path)], first)

    def works(key: str) -> bool:
        with Client(gw.target, api_key=key, timeout=10, retries=0) as c:
            try:
                return bool(c.models())
            except Unauthenticated:
                return False

    def reloads() -> int:
        text = gw.log.read_text()
        return text.count("API keys reloaded") + text.count("not reloaded")

    def reload() -> None:
        before = reloads()
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while reloads() == before:
            assert time.monotonic() < deadline, "the gateway did not log a reload"
            time.sleep(0.05)

    try:
        later = ring.add("later")  # `latentedit keys add` does the same to the file
        ring.save(path)
        assert not works(later)  # read at start only ...
        reload()
        assert works(later) and works(first)  # ... and again on SIGHUP, without a restart

        path.write_text("[keys.broken\n")  # a half-written file: the old keys stay
        reload()
        assert "not reloaded" in gw.log.read_text()
        assert works(later) and works(first) and gw.proc.poll() is None

        del ring.keys["first"]  # a revoked key stops working
        ring.save(path)
        reload()
        assert works(later) and not works(first)
    finally:
        gw.stop()


def test_tls_and_mutual_tls_sync_and_async(
    stack: Stack, tmp_path: Path, keys: tuple[Path, dict[str, str]]
) -> None:
    certs: Certs = make_certs(tmp_path / "certs")
    path, k = keys
    tls_args = ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)]
    gw = start_gateway(
        stack.redis_url,
        tmp_path / "logs",
        [*tls_args, "--auth-file", str(path)],
        ready_key=k["root"],
        tls=str(certs.ca),
    )
    try:
        with Client(gw.target, api_key=k["alice"], tls=str(certs.ca), timeout=60) as c:
            assert c.generate(MODEL, seeds=[7]).latents.shape == (1, 100)

        async def go() -> int:
            async with AsyncClient(gw.target, api_key=k["alice"], tls=certs.ca, timeout=60) as c:
                return len((await c.generate(MODEL, seeds=[7, 8])).images)

        assert asyncio.run(go()) == 2
        with (
            Client(gw.target, api_key=k["alice"], tls=str(certs.other_ca), timeout=5) as c,
            pytest.raises(Unavailable),
        ):
            c.models()  # the gateway's certificate is not from this CA
        with Client(gw.target, api_key=k["alice"], timeout=5) as c, pytest.raises(Unavailable):
            c.models()  # plaintext to a TLS port
    finally:
        gw.stop()

    mtls = TLS(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    gw = start_gateway(
        stack.redis_url,
        tmp_path / "logs",
        [*tls_args, "--tls-client-ca", str(certs.ca)],
        tls=mtls,
    )
    try:
        with Client(gw.target, tls=mtls, timeout=60) as c:
            assert c.generate(MODEL, seeds=[9]).latents.shape == (1, 100)

        async def go_mtls() -> int:
            async with AsyncClient(gw.target, tls=mtls, timeout=60) as c:
                return len(await c.models())

        assert asyncio.run(go_mtls()) >= 1
        with Client(gw.target, tls=certs.ca, timeout=5) as c, pytest.raises(Unavailable):
            c.models()  # no client certificate
    finally:
        gw.stop()


def _png(side: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), 120, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_huge_requests_are_refused_before_redis(stack: Stack, client: Client) -> None:
    """Three 60 MiB Invert requests (a valid PNG, then trailing bytes) never reach Redis."""
    redis = Redis.from_url(stack.redis_url)
    before = int(redis.info("stats")["total_net_input_bytes"])
    blob = _png() + b"\0" * (60 * 1024 * 1024)
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        with pytest.raises(ResourceExhausted, match="max_request_bytes"):
            client.invert(MODEL, [blob], steps=10)
        seconds.append(time.perf_counter() - start)
    grown = int(redis.info("stats")["total_net_input_bytes"]) - before
    assert grown < 1024 * 1024, f"Redis received {grown} bytes"
    assert max(seconds) < 5, seconds
    # Trailing bytes under the budget are cut off at the gateway; the image still works.
    scores = client.score(MODEL, images=[_png() + b"junk" * 1000])
    assert scores.scores.shape[0] == 1
    # A truncated image is refused.
    with pytest.raises(InvalidArgument, match="truncated"):
        client.score(MODEL, images=[_png()[:-20]])


def test_undecodable_request_bytes_are_invalid_argument(stack: Stack) -> None:
    with grpc.insecure_channel(stack.target) as channel:
        for rpc in ("Generate", "Invert", "PutDirection", "InvertStream"):
            if rpc == "InvertStream":
                call = channel.unary_stream(f"/latentedit.v1.LatentEditor/{rpc}")
                with pytest.raises(grpc.RpcError) as info:
                    list(call(b"\xff\xff\xff\xff", timeout=10))
            else:
                call = channel.unary_unary(f"/latentedit.v1.LatentEditor/{rpc}")
                with pytest.raises(grpc.RpcError) as info:
                    call(b"\xff\xff\xff\xff", timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, rpc
            assert f"not a valid {rpc} message" in (info.value.details() or "")


def test_sdk_checks_its_own_arguments(client: Client) -> None:
    for bad in ("abc", [], np.zeros((0, 100)), None):
        with pytest.raises(InvalidArgument, match="latents"):
            client.edit(MODEL, bad, {"x": 1.0})
    with pytest.raises(InvalidArgument, match="no pixels"):
        client.invert(MODEL, [np.zeros((0, 0, 3), np.uint8)])
    with pytest.raises(InvalidArgument):
        client.edit(MODEL, np.zeros((1, 100)), {"x": 1.0}, sweep=("a", 0, 1))  # type: ignore[arg-type]


def test_results_pass_back_as_latents_and_big_scores_are_split(client: Client) -> None:
    g = client.generate("shapes", seeds=[1, 2])
    again = client.generate("shapes", latents=g)
    np.testing.assert_array_equal(again.latents, g.latents)
    client.put_direction("shapes", "door_dir", np.eye(16)[0])
    e = client.edit("shapes", g, {"door_dir": 1.0}, sweep=(3, -1, 1))
    assert client.generate("shapes", latents=e).latents.shape == (6, 16)
    c = client.conditional_edit("shapes", g, "door_dir")
    assert client.score("shapes", c).scores.shape[0] == 2
    z = np.random.default_rng(0).standard_normal((600, 16)).astype(np.float32)
    big = client.score("shapes", z)  # 600 > 256 rows: three calls, joined
    assert big.scores.shape[0] == 600
    np.testing.assert_allclose(big.scores[300:310], client.score("shapes", z[300:310]).scores)
    client.delete_direction("shapes/door_dir")


def test_split_methods_and_residual_shapes_follow_the_model(client: Client) -> None:
    info = {m.name: m for m in client.models()}
    assert info[MODEL].feature_shape == (512, 4, 4)
    assert "extended" in info[MODEL].invert_methods
    assert info["shapes"].feature_shape == ()
    assert "extended" not in info["shapes"].invert_methods  # no first feature map to add to
    with pytest.raises(InvalidArgument, match="not available"):
        client.invert("shapes", [_png()], method="extended")
