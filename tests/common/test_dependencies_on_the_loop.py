"""Every dependency of every route is async: FastAPI runs a plain ``def`` dependency in its thread
pool, a hop to a thread and back per request for functions that never block (three of them cost
each GET /tickets that)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
from fastapi.routing import APIRoute


def _sync_calls(dependant: Any, path: list[str]) -> list[str]:
    found = []
    for dep in dependant.dependencies:
        call = dep.call
        name = getattr(call, "__qualname__", repr(call))
        method = call.__call__ if callable(call) else None  # an instance with an async __call__
        if not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
                or inspect.iscoroutinefunction(method)):
            found.append(" -> ".join([*path, name]))
        found += _sync_calls(dep, [*path, name])
    return found


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """The app's APIRoutes, through the included routers (FastAPI 0.165 wraps each include)."""
    out: list[APIRoute] = []
    for r in routes:
        if isinstance(r, APIRoute):
            out.append(r)
        elif hasattr(r, "original_router"):
            out += _api_routes(r.original_router.routes)
    return out


@pytest.mark.parametrize("service", ["intake311", "indicators", "escalation", "directory"])
def test_no_route_has_a_dependency_that_runs_in_the_thread_pool(service):
    main = importlib.import_module(f"{service}.main")
    config = importlib.import_module(f"{service}.config")
    app = main.create_app(config.Settings(database_url="sqlite+aiosqlite:///:memory:"))
    routes = _api_routes(app.routes)
    assert len(routes) > 10
    sync = [f"{r.methods} {r.path}: {chain}" for r in routes for chain in _sync_calls(r.dependant, [])]
    assert not sync, "\n".join(sorted(set(sync)))
