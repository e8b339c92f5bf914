"""Fixtures for the integration tests: a real stack (redis-server, gateway, worker subprocesses).

- ``stack``: one shared stack for the session; tests must leave it healthy (they use
  their own direction names, and tests that kill workers or fill queues start their own).
- ``client``: a blocking SDK client of the shared stack.
- ``make_stack``: starts a private stack with a given :class:`StackConfig` and stops it after
  the test.
- ``expect_error``: asserts an SDK call fails with one error class and a message naming the
  problem, then that the next valid call still succeeds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latentedit.client import Client
from latentedit.deploy.stack import Stack, StackConfig
from latentedit.errors import LatentEditError

MODEL = "dcgan-faces"
HEALTH_SEED = 424242  # the seed the post-error health check renders


@pytest.fixture(scope="session", autouse=True)
def latentedit_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Stacks see an empty model home (no trained encoder), as on a fresh machine."""
    home = tmp_path_factory.mktemp("latentedit-home")
    old = os.environ.get("LATENTEDIT_HOME")
    os.environ["LATENTEDIT_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("LATENTEDIT_HOME", None)
    else:
        os.environ["LATENTEDIT_HOME"] = old


def log_tails(log_dir: Path, chars: int = 3000) -> str:
    """The last ``chars`` characters of every child's log, for failure messages."""
    parts = []
    for path in sorted(log_dir.glob("*.log")):
        parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-chars:]}")
    return "\n".join(parts)


def start_stack(config: StackConfig) -> Stack:
    stack = Stack(config)
    try:
        stack.start(timeout=180)
    except Exception as exc:
        raise RuntimeError(
            f"stack failed to start: {exc}\n{log_tails(Path(config.log_dir))}"
        ) from exc
    return stack


def pixels(images: list[Any]) -> np.ndarray:
    """PIL images -> uint8 (N, H, W, 3)."""
    return np.stack([np.asarray(im.convert("RGB")) for im in images])


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("stack-logs")
    s = start_stack(StackConfig(port=0, workers=1, log_dir=str(log_dir)))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def client(stack: Stack) -> Iterator[Client]:
    with Client(stack.target, timeout=120) as c:
        yield c


@pytest.fixture(scope="session")
def health_reference(stack: Stack) -> np.ndarray:
    """Pixels (1, 64, 64, 3) of HEALTH_SEED, rendered once on the shared stack."""
    with Client(stack.target, timeout=120) as c:
        return pixels(c.generate(MODEL, seeds=[HEALTH_SEED]).images)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report carries the log tails of the stacks it used (CI shows them)."""
    report = yield
    if report.failed:
        stacks = list(getattr(item, "private_stacks", []))
        shared = getattr(item, "funcargs", {}).get("stack")
        if isinstance(shared, Stack):
            stacks.append(shared)
        for s in stacks:
            if s.config.log_dir:
                report.sections.append(
                    (f"stack logs {s.config.log_dir}", log_tails(Path(s.config.log_dir)))
                )
    return report


@pytest.fixture
def make_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    """``make_stack(**config)`` starts a private stack (port 0, own log dir); stopped after."""
    started: list[Stack] = []
    request.node.private_stacks = started  # for pytest_runtest_makereport

    def make(**kwargs: Any) -> Stack:
        kwargs.setdefault("port", 0)
        kwargs.setdefault("log_dir", str(tmp_path / f"stack{len(started)}-logs"))
        s = start_stack(StackConfig(**kwargs))
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def assert_healthy(client: Client, health_reference: np.ndarray) -> Callable[[], None]:
    """``assert_healthy()``: a valid Generate on ``client`` returns the reference pixels."""

    def check() -> None:
        after = client.generate(MODEL, seeds=[HEALTH_SEED])
        np.testing.assert_array_equal(pixels(after.images), health_reference)

    return check


@pytest.fixture
def expect_error(assert_healthy: Callable[[], None]) -> Callable[..., LatentEditError]:
    """``expect_error(ErrorClass, fn, *words)``: ``fn()`` raises exactly ``ErrorClass`` whose
    message contains every word (case-insensitive); afterwards the service still answers
    (``assert_healthy``). Returns the error.
    """

    def check(
        error: type[LatentEditError], fn: Callable[[], object], *words: str
    ) -> LatentEditError:
        with pytest.raises(LatentEditError) as info:
            fn()
        err = info.value
        assert type(err) is error, f"expected {error.__name__}, got {type(err).__name__}: {err}"
        assert err.code == error.code
        for word in words:
            assert word.lower() in err.message.lower(), f"{word!r} not in {err.message!r}"
        assert_healthy()
        return err

    return check
