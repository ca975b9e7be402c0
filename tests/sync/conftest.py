"""Shared fixtures for the sync layer tests: a context factory per scheduler kind."""

import pytest

from concalloc.sync import SyncContext, make_scheduler

# Small pct_k so that change points fall inside these short runs.
SCHED_OPTS = {"os": {}, "random": {}, "pct": {"depth": 2, "pct_k": 40}, "vtime": {}}
JOIN_TIMEOUT = 20.0     # a safety net only: nothing asserts on time


def new_ctx(kind: str, seed: int = 1, sched_opts: dict | None = None, **ctx_opts) -> SyncContext:
    opts = dict(SCHED_OPTS.get(kind, {}), **(sched_opts or {}))
    return SyncContext(make_scheduler(kind, seed, **opts), **ctx_opts)


@pytest.fixture
def make_ctx():
    return new_ctx


@pytest.fixture(params=list(SCHED_OPTS))
def kind(request):
    return request.param
