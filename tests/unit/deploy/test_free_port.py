"""deploy.stack.free_port: never the same port twice in one process."""

from __future__ import annotations

import socket

import pytest

from latentedit.deploy import stack


def test_a_port_the_kernel_offers_again_is_not_handed_out_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offers = iter([41001, 41001, 41001, 41002])  # the kernel repeats a just-closed port

    class Fake:
        def __enter__(self) -> Fake:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def bind(self, address: tuple[str, int]) -> None:
            self.port = next(offers)

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(stack, "_HANDED_OUT", set())
    monkeypatch.setattr(socket, "socket", Fake)
    assert [stack.free_port(), stack.free_port()] == [41001, 41002]


def test_real_ports_are_distinct_and_bindable() -> None:
    ports = [stack.free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))
