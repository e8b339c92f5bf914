"""Generate the blocking SDK from the asyncio one (one source of truth): ``client/sync_client.py``
from ``client/async_client.py`` and ``client/sync_jobs.py`` from ``client/async_jobs.py``.

A token rewrite with the ``unasync`` package (as encode/httpcore's scripts/gen_sync_client.py
does): ``async``/``await`` dropped, ``AsyncIterator`` -> ``Iterator``, ``__aenter__`` ->
``__enter__``, plus the names below; then ``ruff format``. ``--check`` exits 1 when a
committed file is stale (``tests/test_sync_client_fresh.py`` does the same).

    python scripts/gen_sync_client.py   # rewrite client/sync_client.py
    python scripts/gen_sync_client.py --check
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tokenize_rt
import unasync

ROOT = Path(__file__).resolve().parents[1]
REPLACEMENTS = {
    "AsyncClient": "Client",
    "AsyncTrainingJob": "TrainingJob",  # the training-job handle (client/async_jobs.py)
    "async_jobs": "sync_jobs",
    "async_client": "sync_client",
    "asyncio": "time",  # `from asyncio import sleep` -> `from time import sleep`
    "aio_channel": "sync_channel",
    "aio_ready": "sync_ready",
}
#: (source, target, header of the target)
FILES = [
    (
        ROOT / "client/async_client.py",
        ROOT / "client/sync_client.py",
        '''"""Blocking SDK client: :class:`Client`, the twin of :class:`AsyncClient`.

GENERATED from client/async_client.py by scripts/gen_sync_client.py (`make sync-client`);
do not edit by hand: edit the async client and regenerate.
"""
''',
    ),
    (
        ROOT / "client/async_jobs.py",
        ROOT / "client/sync_jobs.py",
        '''"""The training-job handle of the blocking :class:`Client`: :class:`TrainingJob`.

GENERATED from client/async_jobs.py by scripts/gen_sync_client.py (`make sync-client`);
do not edit by hand: edit the async handle and regenerate.
"""
''',
    ),
]


def render(source: Path, target: Path, header: str) -> str:
    """The text ``target`` must have."""
    rule = unasync.Rule(source.name, target.name, REPLACEMENTS)
    tokens = list(rule._unasync_tokens(tokenize_rt.src_to_tokens(source.read_text())))
    text = tokenize_rt.tokens_to_src(tokens)
    # The module docstring says which file this is.
    end = text.index('"""', 3) + 3
    text = header + text[end:].lstrip("\n").join(["\n", ""])
    ruff = Path(sys.executable).with_name("ruff")
    # Renamed imports may need re-sorting (isort rules), then the formatter.
    text = subprocess.run(
        [str(ruff), "check", "--select", "I", "--fix", "--stdin-filename", str(target), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    ).stdout
    formatted = subprocess.run(
        [str(ruff), "format", "--stdin-filename", str(target), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return formatted.stdout


def main() -> int:
    stale = 0
    for source, target, header in FILES:
        text = render(source, target, header)
        if "--check" not in sys.argv[1:]:
            target.write_text(text)
        elif not target.exists() or target.read_text() != text:
            print(f"{target.relative_to(ROOT)} is stale: run `make sync-client`")
            stale = 1
    return stale


if __name__ == "__main__":
    sys.exit(main())
