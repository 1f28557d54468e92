"""The directory as separate api and worker processes (as `make run` starts it): the worker's
relay publishes what the api wrote, and the api's /metrics reports the worker's metrics too."""

import uuid

import httpx

from citystat_common.demo import directory_rows
from citystat_common.stack import ProcessStack
from citystat_common.testing import auth, collect_events, empty_database


async def test_directory_processes_publish_and_share_metrics(tmp_path, broker):
    stack = ProcessStack(tmp_path / "stack", {"directory": empty_database("sqlite", tmp_path)}, broker)
    try:
        stack.start_all()
        async with httpx.AsyncClient(base_url=stack.url("directory"), timeout=30) as client:
            cid = f"e2e-{uuid.uuid4().hex}"
            r = await client.post(
                "/import", json={"rows": directory_rows()}, headers={**auth("directory"), "X-Correlation-ID": cid}
            )
            assert r.status_code == 200, r.text
            events = await collect_events(
                broker.bootstrap, "directory.changes",
                until=lambda evs: sum(e.correlation_id == cid and e.type == "directory.senior_team.changed" for e in evs) >= 12,
                timeout=60,
            )
            ours = [e for e in events if e.correlation_id == cid]
            teams = {e.data["department_code"] for e in ours if e.type == "directory.senior_team.changed"}
            assert len(teams) == 12
            assert {"STREETS", "CONTACT311"} <= teams
            metrics = (await client.get("/metrics")).text
            assert 'citystat_events_published_total{service="directory",type="directory.senior_team.changed"}' in metrics
    finally:
        stack.stop_all()
