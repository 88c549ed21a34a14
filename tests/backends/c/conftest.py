"""Fixtures of the kernel-library tests: `k`, the library built for each ISA this machine runs
(kernels_harness.isa_params), and `threads`, the pool sizes each kernel is run with."""

from __future__ import annotations

import pytest

from tests.backends.c.kernels_harness import THREADS, isa_params, kernels


@pytest.fixture(params=isa_params())
def k(request):
    return kernels(request.param)


@pytest.fixture(params=THREADS, ids=[f"t{t}" for t in THREADS])
def threads(request) -> int:
    return request.param
