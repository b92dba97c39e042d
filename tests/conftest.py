"""Shared fixtures and marker behaviour for the whole suite.

Markers (configured in pyproject.toml): `slow`, `gpu`, `parity`. Only `gpu` tests skip, and only
where CUDA is absent; everything else runs in CI.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # protocols-only environments
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (gpu marker); this machine has none")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
