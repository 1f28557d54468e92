"""Writes the demo API keys for ``make run``: ``var/demo-keys.json`` ({"role": "key"}, for people
and scripts) and ``var/api-keys.json`` (hashes and scopes, read by the services), and the local
sign-in secrets (``var/local-secrets.env``). Existing keys
are kept so a restart does not invalidate what a newcomer already copied."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from citystat_common.auth import generate_demo_keys, hash_key


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


# Keys one service presents to another: (variable in local-secrets.env, key name, scopes).
SERVICE_KEYS = [("INDICATORS_INTAKE311_API_KEY", "indicators-backfill", ["staff"])]


def ensure_service_keys(folder: Path) -> None:
    """A key per service that calls another (the indicators' history backfill reads intake311):
    the plain key in var/local-secrets.env for the caller, its hash in var/api-keys.json for the
    callee. Kept across runs; added to a machine set up before they existed."""
    secrets_path, hashed_path = folder / "local-secrets.env", folder / "api-keys.json"
    lines = secrets_path.read_text().splitlines() if secrets_path.exists() else []
    plain = dict(line.split("=", 1) for line in lines if "=" in line)
    hashed = json.loads(hashed_path.read_text()) if hashed_path.exists() else {"keys": []}
    for variable, name, scopes in SERVICE_KEYS:
        if not plain.get(variable):
            plain[variable] = f"cs_{name}_{secrets.token_urlsafe(18)}"
            lines.append(f"{variable}={plain[variable]}")
        entry = {"name": name, "sha256": hash_key(plain[variable]), "scopes": scopes, "channel": None}
        hashed["keys"] = [k for k in hashed["keys"] if k.get("name") != name] + [entry]
    secrets_path.write_text("\n".join(lines) + "\n")
    secrets_path.chmod(0o600)
    hashed_path.write_text(json.dumps(hashed, indent=2) + "\n")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "var")
    ensure_keys(target)
    ensure_local_secrets(target)
    ensure_service_keys(target)
