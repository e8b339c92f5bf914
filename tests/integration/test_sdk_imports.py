"""The SDK and the gateway are torch-free: importing them never imports torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "modules",
    ["latentedit.client, latentedit.server.serving", "latentedit.deploy.stack, latentedit.codec"],
)
def test_no_torch_import(modules: str) -> None:
    code = f"import {modules}, sys; assert 'torch' not in sys.modules, 'torch was imported'"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
