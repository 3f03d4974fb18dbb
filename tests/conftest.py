"""Shared fixtures: where the repository and the shared reference data are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WRPFLEET_SHARED_DATA", REPO.parent / "shared" / "data"))


def wrpfleet(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """`wrpfleet ARGS` as a user runs it: a subprocess in the repository root, with its
    real exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "wrpfleet.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def traces() -> Path:
    """The public traces of ../shared/data/traces (CI lays shared/ beside the clone)."""
    path = SHARED / "traces"
    assert path.is_dir(), f"shared traces not found at {path}; set WRPFLEET_SHARED_DATA"
    return path


@pytest.fixture
def write(tmp_path: Path):
    """write(name, text) -> path of a new file under tmp_path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return _write
