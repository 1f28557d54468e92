"""Demo city data shared by every service's tests and by ``make run``."""

import json
from importlib import resources
from typing import Any


def load(name: str) -> Any:
    return json.loads(resources.files(__name__).joinpath(name).read_text())


def directory_rows() -> list[dict[str, Any]]:
    return load("directory.json")["rows"]
