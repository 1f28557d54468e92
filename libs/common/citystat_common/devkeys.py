"""Writes the demo API keys for ``make run``: ``var/demo-keys.json`` ({"role": "key"}, for people
and scripts) and ``var/api-keys.json`` (hashes and scopes, read by the services). Existing keys
are kept so a restart does not invalidate what a newcomer already copied."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from citystat_common.auth import generate_demo_keys


def ensure_keys(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    plain_path, hashed_path = folder / "demo-keys.json", folder / "api-keys.json"
    if plain_path.exists() and hashed_path.exists():
        return json.loads(plain_path.read_text())
    plain, hashed = generate_demo_keys()
    plain_path.write_text(json.dumps(plain, indent=2) + "\n")
    hashed_path.write_text(json.dumps(hashed, indent=2) + "\n")
    plain_path.chmod(0o600)
    return plain


if __name__ == "__main__":
    ensure_keys(Path(sys.argv[1] if len(sys.argv) > 1 else "var"))
