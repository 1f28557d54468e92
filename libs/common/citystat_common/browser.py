"""Pages in a real browser, for tests and checks: Debian's Chromium driven by Playwright, and the
accessibility rules of axe-core run inside the page.

Chromium runs headless with the network features that would call out of this closed machine
turned off (each refused connection costs time). axe-core is the npm package the Makefile
installs under ``.venv/axe`` (``AXE_JS`` overrides the path); only violations of the impacts a
person cannot work around (serious, critical) fail a check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
BLOCKING_IMPACTS = ("serious", "critical")


def axe_script_path() -> Path:
    configured = os.environ.get("AXE_JS")
    if configured:
        return Path(configured)
    root = Path(__file__).resolve().parents[3]
    return root / ".venv" / "axe" / "node_modules" / "axe-core" / "axe.min.js"


def have_browser() -> bool:
    return Path(CHROMIUM).exists() and axe_script_path().exists()


async def axe_violations(page: Any, *, impacts: tuple[str, ...] = BLOCKING_IMPACTS) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now; the violations of the given impacts, each with the rule,
    its help text and the offending elements' selectors (for a readable test failure)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(axe_script_path()))
    result = await page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v.get("impact"), "help": v.get("help"),
         "targets": [n.get("target") for n in v.get("nodes", [])][:5]}
        for v in result.get("violations", [])
        if v.get("impact") in impacts
    ]


def describe(violations: list[dict[str, Any]]) -> str:
    return json.dumps(violations, indent=1)
