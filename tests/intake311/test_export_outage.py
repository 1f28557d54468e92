"""The CSV export while the database cannot be reached is a 503 with Retry-After, not a 200 with an
empty file: the query starts before the response does."""

import shutil

from citystat_common.testing import TEST_KEY_ENTRIES, app_client, auth, fresh_database
from intake311.config import Settings
from intake311.main import create_app


async def test_export_during_an_outage_is_a_503(tmp_path):
    folder = tmp_path / "db"
    folder.mkdir()
    url = fresh_database("sqlite", "intake311", folder)
    app = create_app(Settings(database_url=url, api_keys=TEST_KEY_ENTRIES, kafka_bootstrap="127.0.0.1:9"))
    async with app_client(app) as client:
        ok = await client.get("/export/requests.csv", headers=auth("staff"))
        assert ok.status_code == 200 and ok.text.startswith("service_request_id")
        await app.state.ctx.engine.dispose()  # the pooled connection goes, as in a restart
        shutil.move(folder, tmp_path / "gone")  # ...and the file cannot be opened again
        down = await client.get("/export/requests.csv", headers=auth("staff"))
        assert down.status_code == 503, down.text[:300]
        assert down.headers["retry-after"]
