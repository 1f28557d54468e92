"""``make run EMPTY=1`` (CITYSTAT_DEMO=0): the loader waits for the services and prints where they
are, but loads no demo data: an empty city."""

import json

import pytest

from citystat_common.demo import loader


@pytest.mark.parametrize(("setting", "loads"), [(None, True), ("1", True), ("0", False), ("no", False)])
async def test_the_demo_is_loaded_unless_the_city_starts_empty(setting, loads, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "demo-keys.json").write_text(json.dumps({"admin": "k"}))
    if setting is None:
        monkeypatch.delenv("CITYSTAT_DEMO", raising=False)
    else:
        monkeypatch.setenv("CITYSTAT_DEMO", setting)
    called: list[str] = []

    async def fake_loader(client, keys):
        called.append(keys["admin"])
        return "loaded"

    async def ready(client, service, timeout=0):
        return True

    monkeypatch.setattr(loader, "_extra_loaders", lambda: [("directory", fake_loader), ("intake311", fake_loader)])
    monkeypatch.setattr(loader, "wait_ready", ready)
    await loader.main()
    out = capsys.readouterr().out
    assert called == (["k", "k"] if loads else [])
    assert ("an empty city" in out) is not loads
    assert "intake311" in out and "Demo API keys" in out  # where to look, either way
