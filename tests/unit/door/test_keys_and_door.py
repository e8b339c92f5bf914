"""API key file, authentication and per-key limits (no network)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from latentedit.server import door_setup
from latentedit.server.auth import Door, model_of
from latentedit.server.auth_keys import KeyRing
from latentedit.v1 import latentedit_pb2 as pb


def test_key_file_round_trip_stores_only_hashes(tmp_path: Path) -> None:
    ring = KeyRing()
    key = ring.add("alice", models=["shapes"], rate=5, max_inflight=2)
    admin = ring.add("root", admin=True)
    path = tmp_path / "keys.toml"
    ring.save(path)
    text = path.read_text()
    assert key not in text and admin not in text and "sha256$" in text
    assert path.stat().st_mode & 0o077 == 0
    loaded = KeyRing.load(path)
    alice = loaded.authenticate(key)
    assert alice is not None and alice.name == "alice" and alice.models == {"shapes"}
    assert alice.rate == 5 and alice.max_inflight == 2 and not alice.admin
    root = loaded.authenticate(admin)
    assert root is not None and root.admin
    assert loaded.authenticate(key + "x") is None
    assert loaded.authenticate("") is None


def _md(value: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", value),)


def test_authenticate_statuses() -> None:
    ring = KeyRing()
    key = ring.add("bob")
    door = Door(ring)
    assert door.authenticate(())[1] == grpc.StatusCode.UNAUTHENTICATED
    assert door.authenticate(_md(key))[1] == grpc.StatusCode.UNAUTHENTICATED  # no scheme
    assert door.authenticate(_md("Bearer nope"))[1] == grpc.StatusCode.UNAUTHENTICATED
    found, status, _ = door.authenticate(_md(f"Bearer {key}"))
    assert status == grpc.StatusCode.OK and found is not None and found.name == "bob"
    assert Door(None).authenticate(())[1] == grpc.StatusCode.OK  # open gateway


async def test_models_rate_and_inflight() -> None:
    ring = KeyRing()
    ring.add("k", models=["shapes"], rate=10, burst=2, max_inflight=3)
    door = Door(ring)
    key = ring.keys["k"]
    deny, msg, _ = await door.admit(key, pb.GenerateRequest(model="dcgan-faces"))
    assert deny == grpc.StatusCode.PERMISSION_DENIED and "dcgan-faces" in msg
    deny, _, _ = await door.admit(key, pb.GetDirectionRequest(id="dcgan-faces/x"))
    assert deny == grpc.StatusCode.PERMISSION_DENIED
    ok = pb.GenerateRequest(model="shapes")
    slots = []
    for _ in range(2):
        status, _, slot = await door.admit(key, ok)
        assert status == grpc.StatusCode.OK and slot is not None
        slots.append(slot)
    status, msg, _ = await door.admit(key, ok)  # burst of 2 spent
    assert status == grpc.StatusCode.RESOURCE_EXHAUSTED and "rate" in msg
    await asyncio.sleep(0.25)  # 10/s: two tokens back
    assert (await door.admit(key, ok))[0] == grpc.StatusCode.OK  # third in flight
    await asyncio.sleep(0.15)
    status, msg, _ = await door.admit(key, ok)
    assert status == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_inflight 3" in msg
    await door.release(key, slots[0])
    await asyncio.sleep(0.15)
    assert (await door.admit(key, ok))[0] == grpc.StatusCode.OK


def test_model_of() -> None:
    assert model_of(pb.EditRequest(model="m")) == "m"
    assert model_of(pb.DeleteDirectionRequest(id="m/x")) == "m"
    assert model_of(pb.ListModelsRequest()) == ""


def test_open_gateway_warns_beyond_loopback(caplog: pytest.LogCaptureFixture) -> None:
    from latentedit.server import door_setup
    from latentedit.server.settings import GatewaySettings

    with caplog.at_level(logging.WARNING):
        door_setup.interceptor(GatewaySettings(listen="127.0.0.1:0"))
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        door_setup.interceptor(GatewaySettings(listen="0.0.0.0:0"))
    assert any("no --auth-file" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="go together"):
        GatewaySettings(tls_cert="c.pem")
    with pytest.raises(ValueError, match="mutual TLS"):
        GatewaySettings(tls_client_ca="ca.pem")


async def test_replaced_keys_serve_the_next_call_and_reset_changed_buckets(tmp_path: Path) -> None:
    ring = KeyRing()
    old_key = ring.add("old", rate=1, burst=1)
    door = Door(ring)
    key = ring.keys["old"]
    assert (await door.admit(key, pb.ListModelsRequest()))[0] == grpc.StatusCode.OK
    assert (await door.admit(key, pb.ListModelsRequest()))[0] == grpc.StatusCode.RESOURCE_EXHAUSTED

    path = tmp_path / "keys.toml"
    new = KeyRing.load(_saved(ring, path))
    new_key = new.add("new")
    new.keys["old"] = replace(new.keys["old"], rate=100, burst=5)  # raised by the operator
    new.save(path)
    assert door_setup.reload_keys(door, str(path))
    assert door.authenticate(_md(f"Bearer {new_key}"))[1] == grpc.StatusCode.OK
    raised = door.authenticate(_md(f"Bearer {old_key}"))[0]
    assert raised is not None and raised.rate == 100
    assert (await door.admit(raised, pb.ListModelsRequest()))[0] == grpc.StatusCode.OK

    path.write_text("[keys.broken")  # does not parse: nothing changes
    assert not door_setup.reload_keys(door, str(path))
    assert door.authenticate(_md(f"Bearer {new_key}"))[1] == grpc.StatusCode.OK
    with pytest.raises(ValueError, match="without --auth-file"):
        Door(None).replace_keys(new)


def _saved(ring: KeyRing, path: Path) -> Path:
    ring.save(path)
    return path
