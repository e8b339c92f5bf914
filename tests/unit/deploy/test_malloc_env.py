"""The worker's malloc settings (deploy/malloc_env.py): when they apply, and the operator's
precedence over them."""

from __future__ import annotations

from latentedit.deploy.malloc_env import WORKER_MALLOC, worker_malloc_env


def test_a_linux_worker_gets_the_settings_added_to_its_environment() -> None:
    env = worker_malloc_env({"PATH": "/usr/bin"}, "linux")
    assert env == {"PATH": "/usr/bin", **WORKER_MALLOC}
    assert int(WORKER_MALLOC["MALLOC_MMAP_THRESHOLD_"]) >= 64 << 20  # past glibc's 32 MiB cap


def test_nothing_changes_once_set_elsewhere_or_off_linux() -> None:
    assert worker_malloc_env({**WORKER_MALLOC}, "linux") is None  # no second re-exec
    assert worker_malloc_env({"MALLOC_ARENA_MAX": "4"}, "linux") is None  # the operator's
    assert worker_malloc_env({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, "linux") is None
    assert worker_malloc_env({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, "linux") is None
    assert worker_malloc_env({"PATH": "/usr/bin"}, "darwin") is None
    assert worker_malloc_env({"LD_PRELOAD": ""}, "linux") is not None  # empty: not set
