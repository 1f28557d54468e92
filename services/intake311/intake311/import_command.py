"""``intake311-worker import-requests PATH --mapping MAPPING.toml [--dry-run]``: a city's request
history from a CSV export (intake311.history_import), with progress on a terminal and the report on
standard output (a dry run ends with ``N of M rows would be imported``)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path

from citystat_common.auth import Actor
from citystat_common.db import create_engine, session_factory
from citystat_common.uow import UnitOfWork
from intake311.config import Settings
from intake311.deps import Deps
from intake311.history_import import ImportReport, ImportStopped, run_import
from intake311.mapping import Mapping, MappingError
from intake311.models import PLUMBING


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the CSV export (a header row, then one request per row)")
    parser.add_argument("--mapping", required=True, type=Path, help="the mapping file (TOML), e.g. deploy/mappings/nyc-open-data.toml")
    parser.add_argument("--dry-run", action="store_true", help="check every row and report; write nothing")
    parser.add_argument("--by", default=None, help="who runs the import, as the batch records it (default: the login name)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        mapping = Mapping.load(args.mapping, channels=settings.channels, closure_reasons=settings.closure_reasons)
    except (OSError, MappingError) as exc:
        print(f"mapping {args.mapping}: {exc}", file=sys.stderr)
        return 2
    if not args.path.is_file():
        print(f"no file {args.path}", file=sys.stderr)
        return 2
    actor = Actor(kind="key", name=f"import-requests ({args.by or _login()})")
    try:
        report = asyncio.run(_run(settings, args.path, mapping, actor, args.dry_run))
    except MappingError as exc:
        print(f"{args.path}: {exc}", file=sys.stderr)
        return 2
    except ImportStopped as exc:
        _print(exc.report)
        print(f"{args.path}: stopped: {exc}", file=sys.stderr)
        return 1
    _print(report)
    return 0


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _print(report: ImportReport) -> None:
    for line in report.lines():
        print(line)


async def _run(settings: Settings, path: Path, mapping: Mapping, actor: Actor, dry_run: bool) -> ImportReport:
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    size = path.stat().st_size
    try:
        with path.open("rb") as source, _progress(size, path.name) as advance:
            return await run_import(lambda: UnitOfWork(sessions, PLUMBING), Deps(settings), source=source,
                                    file_name=path.name, mapping=mapping, actor=actor, dry_run=dry_run,
                                    chunk_rows=settings.import_batch_rows, progress=advance)
    finally:
        await engine.dispose()


class _progress:
    """A progress bar on a terminal (rich, to standard error); nothing when output is redirected."""

    def __init__(self, size: int, name: str):
        self.size, self.name = size, name
        self.bar = None
        self.task = None

    def __enter__(self):  # type: ignore[no-untyped-def]
        if not sys.stderr.isatty():
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        self.bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                            TimeRemainingColumn(), transient=True)
        self.bar.start()
        self.task = self.bar.add_task(f"importing {self.name}", total=self.size)
        bar, task = self.bar, self.task
        return lambda done: bar.update(task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
