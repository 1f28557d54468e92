"""One launcher for the baseline and the services, so both run under identical uvicorn settings:
``python -m bench.launcher <module:factory> <port>``. The kwargs below are the only server settings
the intake benchmark uses (1 worker, loop/http auto = uvloop/httptools, no access log)."""

from __future__ import annotations

import sys

SERVER_KWARGS = {
    "factory": True,
    "host": "127.0.0.1",
    "workers": 1,
    "loop": "auto",
    "http": "auto",
    "access_log": False,
    "log_level": "warning",
}


def main() -> None:
    import uvicorn

    target, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(target, port=port, **SERVER_KWARGS)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
