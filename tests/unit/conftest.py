"""Unit tests need no server: the web app's live sections (webapp/outcomes.py) get no Cassandra
session here unless a test gives them one."""
import pytest


@pytest.fixture(autouse=True)
def no_cassandra_for_the_pages(monkeypatch):
    def refuse(self):
        raise RuntimeError("no Cassandra in unit tests")

    monkeypatch.setattr("webapp.outcomes.Reader.session", refuse)
