"""Shared fixtures: the read-only data folder beside the checkout, small datasets, CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real MNIST test set, Fashion-MNIST); tests skip without it."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``genphys`` in-process: returns (exit code, stdout, stderr)."""
    from genphys.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse --help / usage errors
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
