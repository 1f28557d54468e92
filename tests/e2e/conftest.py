"""A whole system as separate processes (broker + each service's api and worker), shared by the
end-to-end tests of a module. PostgreSQL when TEST_POSTGRES_URL is set, else SQLite files."""

from __future__ import annotations

import pytest

from citystat_common.stack import ProcessStack
from citystat_common.testing import fresh_database, postgres_admin_url


def make_stack(tmp_path_factory, broker, services, extra_env=None, name="stack") -> ProcessStack:
    kind = "postgres" if postgres_admin_url() else "sqlite"
    folder = tmp_path_factory.mktemp(name)
    urls = {s: fresh_database(kind, s, folder) for s in services}
    return ProcessStack(folder, urls, broker, extra_env=extra_env)


@pytest.fixture
def stack_factory(tmp_path_factory, broker):
    """Stacks live for one test: two stacks on one broker would share consumer groups."""
    stacks: list[ProcessStack] = []

    def factory(services, extra_env=None, own_broker=None):
        stack = make_stack(tmp_path_factory, own_broker or broker, services, extra_env)
        stacks.append(stack)
        stack.start_all()
        return stack

    yield factory
    for s in stacks:
        s.stop_all()
