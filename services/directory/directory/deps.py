"""What the directory's domain needs besides the database: the service's own settings and the
clock. Built by the composition roots (``main.create_app``, ``worker.build_worker``) and passed as
``f(uow, deps, *, ...)`` to every operation that changes the directory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from citystat_common.db import utcnow
from citystat_common.web import app_deps
from directory.config import Settings


@dataclass
class Deps:
    settings: Settings
    clock: Callable[[], datetime] = field(default=utcnow)

    def now(self) -> datetime:
        return self.clock()


def get_deps(request: Request) -> Deps:
    """The web process's Deps, set on the app by ``main.create_app``."""
    deps: Deps = request.app.state.deps
    return deps


DirectoryDeps = Annotated[Deps, Depends(app_deps)]
