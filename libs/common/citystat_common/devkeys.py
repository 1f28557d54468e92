"""Writes the demo API keys for ``make run``: ``var/demo-keys.json`` ({"role": "key"}, for people
and scripts) and ``var/api-keys.json`` (hashes and scopes, read by the services), and the local
sign-in secrets (``var/local-secrets.env``). Existing keys
are kept so a restart does not invalidate what a newcomer already copied."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from citystat_common.auth import generate_demo_keys


def ensure_local_secrets(folder: Path) -> Path:
    """var/local-secrets.env: the page sessions' signing secret and the client secret the services
    present to the local provider, random per machine (never committed), kept across restarts so
    sessions survive them."""
    path = folder / "local-secrets.env"
    if not path.exists():
        path.write_text(f"SESSION_SECRET={secrets.token_urlsafe(32)}\nIDENTITY_CLIENT_SECRET={secrets.token_urlsafe(24)}\n")
        path.chmod(0o600)
    return path


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
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "var")
    ensure_keys(target)
    ensure_local_secrets(target)
