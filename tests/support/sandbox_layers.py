"""The sandbox's layers as a pytest parameter: each kernel mechanism, and the inner layer alone."""

from __future__ import annotations

import pytest

from medmoe_lm_eval import settings
from medmoe_lm_eval.benchmarks import isolation

KERNEL_MECHANISMS = ("bwrap", "unshare")


def require(mechanism: str) -> None:
    """Skip (one line, with the reason) where ``mechanism`` cannot start a sandbox."""
    if not isolation.works(mechanism):
        pytest.skip(f"{mechanism} cannot start a sandbox here: {isolation.probe_error(mechanism)}")


@pytest.fixture(params=[*KERNEL_MECHANISMS, "off"])
def layer(request, monkeypatch) -> str:
    """``MEDMOE_SANDBOX`` set to one kernel mechanism, or ``off`` (rlimits + audit hook only)."""
    if request.param != "off":
        require(request.param)
    monkeypatch.setenv(settings.SANDBOX.name, request.param)
    return request.param


@pytest.fixture(params=KERNEL_MECHANISMS)
def kernel(request, monkeypatch) -> str:
    """Each kernel mechanism in turn (skipped where it cannot run)."""
    require(request.param)
    monkeypatch.setenv(settings.SANDBOX.name, request.param)
    return request.param
