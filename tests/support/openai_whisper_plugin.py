"""pytest plugin for openai-whisper's own tests: what its repository's conftest.py gives them and its
source distribution lacks. The ``requires_cuda`` marker, whose tests skip without a CUDA device."""
from __future__ import annotations

import pytest

NO_CUDA_REASON = "requires_cuda: no CUDA device on this machine"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires_cuda: needs a CUDA device")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    import torch

    if torch.cuda.is_available():
        return
    for item in items:
        if item.get_closest_marker("requires_cuda"):
            item.add_marker(pytest.mark.skip(reason=NO_CUDA_REASON))
