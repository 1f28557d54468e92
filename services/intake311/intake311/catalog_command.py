"""``intake311-worker import-catalog FILE.csv [--dry-run]``: a city's service catalog from a CSV
file (or a .json file of rows), as ``POST /admin/catalog/import`` does: all or nothing, every
problem reported at once (``row N, column: why``), the same file again changes nothing. Departments
come from the local copy, else from the directory at INTAKE311_DIRECTORY_URL."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from citystat_common.auth import Actor
from citystat_common.db import create_engine, session_factory
from citystat_common.directory import DirectoryDepartments
from citystat_common.uow import UnitOfWork
from intake311 import catalog_file
from intake311.catalog_import import CatalogReport, departments_resolver, import_catalog
from intake311.config import Settings
from intake311.deps import Deps
from intake311.import_command import _login
from intake311.models import PLUMBING


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the catalog file: CSV with a header row (the README's \"How a city onboards\"), or .json rows")
    parser.add_argument("--dry-run", action="store_true", help="check every row and report what would change; store nothing")
    parser.add_argument("--by", default=None, help="who imports the catalog, as each changed service records it (default: the login name)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    if not args.path.is_file():
        print(f"no file {args.path}", file=sys.stderr)
        return 2
    content_type = "application/json" if args.path.suffix.lower() == ".json" else "text/csv"
    actor = Actor(kind="key", name=f"import-catalog ({args.by or _login()})")
    report = asyncio.run(_run(settings, args.path.read_bytes(), content_type, actor, args.dry_run))
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


async def _run(settings: Settings, raw: bytes, content_type: str, actor: Actor, dry_run: bool) -> CatalogReport:
    rows, entries, errors = catalog_file.parse(raw, content_type)
    engine = create_engine(settings.database_url)
    directory = DirectoryDepartments.connect(settings.directory_url, settings.directory_timeout) if settings.directory_url else None
    deps = Deps(settings, departments=directory)
    try:
        async with UnitOfWork(session_factory(engine), PLUMBING) as uow:
            report = await import_catalog(uow, deps, entries=entries, rows=rows, errors=errors,
                                          resolve=departments_resolver(uow, deps), actor=actor, dry_run=dry_run)
            if report.ok and not dry_run:
                await uow.commit()
            return report
    finally:
        if directory is not None:
            await directory.aclose()
        await engine.dispose()
