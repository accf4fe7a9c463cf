import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def root():
    return ROOT


def tool(name: str) -> str:
    "A console script of this environment (papermill, moons-vae, ...)."
    p = BIN / name
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: install the project with `bash tasks.sh setup`")
    return str(p)
