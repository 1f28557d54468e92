"""A real Prometheus (Debian's package) scrapes the running services on loopback; its query API
shows the services' metrics with the expected names and labels."""

import shutil
import subprocess
import time

import httpx
import pytest

from citystat_common.localbroker import free_port
from citystat_common.stack import available_services
from citystat_common.testing import auth


@pytest.fixture
def prometheus_bin():
    path = shutil.which("prometheus")
    if not path:
        pytest.skip("Debian's prometheus package is not installed (make test installs it)")
    return path


def test_prometheus_scrapes_every_service(stack_factory, prometheus_bin, tmp_path):
    services = available_services()
    stack = stack_factory(services)
    httpx.get(f"{stack.url('directory')}/departments", timeout=10)  # something to count
    port = free_port()
    jobs = "\n".join(
        f"  - job_name: {s}\n    static_configs:\n      - targets: ['127.0.0.1:{stack.services[s].port}']" for s in services
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}\n")
    proc = subprocess.Popen(
        [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1/query"

    def query(q):
        try:
            return httpx.get(api, params={"query": q}, timeout=5).json()["data"]["result"]
        except (httpx.HTTPError, KeyError, ValueError):
            return []

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            up = {r["metric"]["job"]: r["value"][1] for r in query("up")}
            if len(up) == len(services) and set(up.values()) == {"1"}:
                break
            time.sleep(0.5)
        assert up == dict.fromkeys(services, "1"), up
        httpx.post(f"{stack.url('directory')}/people", json={"name": "Scraped"}, headers=auth("directory"), timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            series = query('citystat_http_requests_total{service="directory",route="/people",method="POST"}')
            if series:
                break
            time.sleep(0.5)
        assert series and series[0]["metric"]["status"] == "201"
        # the worker's metrics reach the same scrape (multiprocess mode): the relay's backlog gauge
        for s in services:
            assert query(f'citystat_outbox_backlog{{service="{s}"}}'), f"no outbox gauge from {s}'s worker"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
