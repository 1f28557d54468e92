"""Reading a service's log back (citystat_common.fuzzing): the traceback it logged for a failed input."""

from __future__ import annotations

import io
import json
import re
import sys
from typing import Any


class LogTap:
    """The structlog output of an in-thread server, also kept in memory, so that a 5xx can be
    reported with the traceback the service logged for it (found by the request's correlation id)."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self._saved: Any = None

    def write(self, text: str) -> int:
        self.buffer.write(text)
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def __enter__(self) -> LogTap:
        import structlog

        self._saved = structlog.get_config().get("logger_factory")
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=self))  # type: ignore[arg-type]
        return self

    def __exit__(self, *exc: object) -> None:
        import structlog

        if self._saved is not None:
            structlog.configure(logger_factory=self._saved)

    def mark(self) -> int:
        return self.buffer.tell()

    def traceback_since(self, mark: int) -> str:
        """The last frame in this repository and the exception, of the error logged after ``mark``
        (requests go one at a time; the 500's log line has no correlation id: it is written outside
        the middleware that sets it)."""
        chunk = self.buffer.getvalue()[mark:]
        text = chunk
        for line in chunk.splitlines():
            if line.startswith("{") and '"exception"' in line:
                try:
                    text = json.loads(line)["exception"]
                except ValueError:
                    pass
                break
        if "Traceback" not in text:
            return "(no traceback logged)"
        return traceback_tail(text)


_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|Group)\b.*")


def traceback_tail(text: str) -> str:
    """``path:line in function: code | ExceptionType: message`` of the last frame in the project."""
    lines = text.splitlines()
    frame, exc = "", ""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith('File "') and "site-packages" not in stripped and "/lib/python" not in stripped:
            m = re.match(r'File "(.*?)", line (\d+), in (\S+)', stripped)
            code = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if m:
                path = re.sub(r"^.*?/(services|libs|tests)/", r"\1/", m.group(1))
                frame = f"{path}:{m.group(2)} in {m.group(3)}: {code[:160]}"
        elif _EXC_LINE.match(stripped):
            exc = stripped[:300]
    return f"{frame} | {exc}" if frame else exc or text.strip().splitlines()[-1][:300]
