"""Integration tests talk to the real servers. The first test that needs a server starts it
(through the launcher, once per session); at the end of the session the fixture stops exactly
the servers it started, leaving alone any that were already up (e.g. from ``make up``).
A server that cannot start is an error, never a skip."""
import pytest

from infra import launcher
from infra.services import by_name


class Stack:
    def __init__(self, settings):
        self.settings = settings
        self.started = []
        self.ready = set()

    def require(self, *names):
        for svc in by_name([n for n in names if n not in self.ready]):
            if launcher.start(self.settings, svc):
                self.started.append(svc)
            self.ready.add(svc.name)
        return self.settings

    def teardown(self):
        launcher.down(self.settings, self.started)


@pytest.fixture(scope="session")
def stack(settings):
    s = Stack(settings)
    yield s
    s.teardown()
