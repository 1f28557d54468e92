"""Print the production subset of requirements.lock for one service's image.

requirements.lock is exported with every dependency group (tests, linters, browsers), so
installing it whole would put pytest, Playwright and hadolint into production images.
``uv export`` annotates each pin with the packages that pull it in (``# via ...``); this
keeps the pins reachable from the given roots (the workspace packages baked into the image)
and prints them with their hashes, for ``uv pip install --require-hashes --no-deps``.

    python prod_requirements.py requirements.lock citystat-common citystat-directory > prod.lock

Standard library only: it runs in the image's builder stage before anything is installed.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Pin:
    name: str
    lines: list[str] = field(default_factory=list)  # the requirement and its --hash continuations
    via: set[str] = field(default_factory=set)


def parse(text: str) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via_list = False
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped:
            continue
        match = _NAME.match(line)
        if match:
            current = Pin(canonical(match.group(1)), [line])
            pins[current.name] = current
            in_via_list = False
            continue
        if current is None:
            continue  # the file's header comments
        if stripped.startswith("--hash"):
            current.lines.append(line)
        elif stripped.startswith("# via"):
            rest = stripped[len("# via"):].strip()
            if rest:
                current.via.add(canonical(rest.split()[0]))
                in_via_list = False
            else:
                in_via_list = True
        elif stripped.startswith("#   ") or (in_via_list and stripped.startswith("#")):
            current.via.add(canonical(stripped.lstrip("#").strip().split()[0]))
        elif line.startswith((" ", "\t")):
            current.lines.append(line)
    return pins


def closure(pins: dict[str, Pin], roots: list[str]) -> list[Pin]:
    wanted = {canonical(r) for r in roots}
    changed = True
    while changed:
        changed = False
        for pin in pins.values():
            if pin.name not in wanted and pin.via & wanted:
                wanted.add(pin.name)
                changed = True
    return [p for p in pins.values() if p.name in wanted]


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    pins = parse(Path(argv[1]).read_text())
    selected = closure(pins, argv[2:])
    if not selected:
        print("no pins reachable from " + ", ".join(argv[2:]), file=sys.stderr)
        return 1
    for pin in selected:
        body = "\n".join(pin.lines)
        # The last line of a block must not end in a continuation backslash.
        print(body.rstrip(" \\"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
