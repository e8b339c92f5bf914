"""Generate ``client/sync_client.py`` from ``client/async_client.py`` (one source of truth).

A token rewrite with the ``unasync`` package (as encode/httpcore's scripts/gen_sync_client.py
does): ``async``/``await`` dropped, ``AsyncIterator`` -> ``Iterator``, ``__aenter__`` ->
``__enter__``, plus the names below; then ``ruff format``. ``--check`` exits 1 when the
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
SOURCE = ROOT / "client/async_client.py"
TARGET = ROOT / "client/sync_client.py"
REPLACEMENTS = {
    "AsyncClient": "Client",
    "AsyncTrainingJob": "TrainingJob",  # jobs: the training-job handle (client/jobs.py)
    "aio_channel": "sync_channel",
    "aio_ready": "sync_ready",
}
HEADER = '''"""Blocking SDK client: :class:`Client`, the twin of :class:`AsyncClient`.

GENERATED from client/async_client.py by scripts/gen_sync_client.py (`make sync-client`);
do not edit by hand: edit the async client and regenerate.
"""
'''


def render() -> str:
    """The text sync_client.py must have."""
    rule = unasync.Rule("async_client.py", "sync_client.py", REPLACEMENTS)
    tokens = list(rule._unasync_tokens(tokenize_rt.src_to_tokens(SOURCE.read_text())))
    text = tokenize_rt.tokens_to_src(tokens)
    # The module docstring says which file this is.
    end = text.index('"""', 3) + 3
    text = HEADER + text[end:].lstrip("\n").join(["\n", ""])
    ruff = Path(sys.executable).with_name("ruff")
    # Renamed imports may need re-sorting (isort rules), then the formatter.
    text = subprocess.run(
        [str(ruff), "check", "--select", "I", "--fix", "--stdin-filename", str(TARGET), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    ).stdout
    formatted = subprocess.run(
        [str(ruff), "format", "--stdin-filename", str(TARGET), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return formatted.stdout


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if TARGET.read_text() != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run `make sync-client`")
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
