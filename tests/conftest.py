"""Session fixtures shared by every test folder: ``settings``, ``spark`` and ``stack``, each set
up once per run (``pytest --setup-plan`` shows one SETUP of each)."""
import pytest

from flightdelay.config import load_settings
from infra import launcher
from infra.services import by_name, start_order, with_needs


@pytest.fixture(scope="session")
def settings():
    return load_settings()


@pytest.fixture(scope="session")
def spark(settings):
    """One SparkSession for the whole test session, built the project's way (get_spark).

    No test reads Kafka through Spark in this process (the streaming job runs as its own
    process), so the session does not need the Kafka connector and `make test-unit` needs no
    Maven."""
    from flightdelay.spark import get_spark

    session = get_spark(settings, "flightdelay-tests")
    yield session
    session.stop()


class Stack:
    """The real servers, for integration and e2e tests. The first test that needs a server
    starts it (through the launcher); at the end of the session exactly the servers started
    here are stopped, leaving alone any that were already up (e.g. from ``make up``). A server
    that cannot start is an error, never a skip."""

    def __init__(self, settings):
        self.settings = settings
        self.started = []
        self.ready = set()

    def require(self, *names):
        """Start ``names`` unless already up (with FD_CLUSTER=1 a clustered server's name means
        its nodes); return the Settings to reach them."""
        wanted = [n for n in with_needs(list(names)) if n not in self.ready]
        services = sorted(by_name(wanted, self.settings), key=start_order)  # the Spark master before the job
        self.started += launcher.up(self.settings, services)
        self.ready.update(wanted)
        return self.settings

    def teardown(self):
        launcher.down(self.settings, self.started)


@pytest.fixture(scope="session")
def stack(settings):
    s = Stack(settings)
    yield s
    s.teardown()
