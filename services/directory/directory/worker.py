"""Directory worker: the outbox relay (the directory consumes no topic)."""

from __future__ import annotations

from citystat_common.db import create_engine
from citystat_common.runtime import WorkerParts, make_relay, worker_main
from citystat_common.settings import ServiceSettings
from directory.config import Settings
from directory.models import PLUMBING


def build_worker(settings: ServiceSettings) -> WorkerParts:
    engine = create_engine(settings.database_url)
    return WorkerParts(engine=engine, relay=make_relay(settings, engine, PLUMBING))


def main() -> None:
    worker_main(package="directory", settings_factory=Settings, tables=PLUMBING, build=build_worker)


if __name__ == "__main__":
    main()
