"""Files from shared/ beside the repository (as CI lays it: a fresh clone with shared/ next to it)."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))


def shared_fixture(name: str) -> Path:
    path = SHARED_DIR / "fixtures" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: shared/ must be beside the repository (or set SHARED_DIR)")
    return path
