"""free_port() under parallel test workers: a port it hands out is reserved machine-wide, so no
other worker (or test session) is handed the same port before its first caller binds it."""

from __future__ import annotations

import os
import time

from citystat_common import localbroker
from citystat_common.localbroker import free_port


class _Kernel:
    """Stands in for socket.socket: bind(port 0) is offered the next port of a fixed sequence."""

    offers: list[int] = []

    def __enter__(self) -> _Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def bind(self, address: tuple[str, int]) -> None:
        self.port = _Kernel.offers.pop(0)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def test_a_port_handed_out_is_not_handed_out_again_while_reserved(tmp_path, monkeypatch):
    monkeypatch.setattr(localbroker, "PORT_RESERVATIONS", tmp_path)
    monkeypatch.setattr(localbroker.socket, "socket", _Kernel)
    _Kernel.offers = [40001, 40001, 40003]
    assert free_port() == 40001
    assert free_port() == 40003  # the kernel offered 40001 again: still reserved, so skipped
    assert (tmp_path / "40001").exists() and (tmp_path / "40003").exists()


def test_an_old_reservation_is_taken_over(tmp_path, monkeypatch):
    monkeypatch.setattr(localbroker, "PORT_RESERVATIONS", tmp_path)
    monkeypatch.setattr(localbroker.socket, "socket", _Kernel)
    (tmp_path / "40001").touch()
    old = time.time() - localbroker.PORT_RESERVATION - 1
    os.utime(tmp_path / "40001", (old, old))
    _Kernel.offers = [40001]
    assert free_port() == 40001
    assert time.time() - (tmp_path / "40001").stat().st_mtime < 5


def test_a_real_port_is_free_and_reserved():
    port = free_port()
    assert (localbroker.PORT_RESERVATIONS / str(port)).exists()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # nothing listens there
