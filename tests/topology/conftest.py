"""Fixtures of the topology tests: the servers of tests/servers.py."""

from tests.servers import s3_client, stack, stack_env  # noqa: F401 - pytest fixtures
