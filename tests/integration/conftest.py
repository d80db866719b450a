"""Fixtures shared by the integration tests of one server."""
import pytest

from flightdelay.stores import mongo


@pytest.fixture(scope="module")
def mongo_settings(stack):
    return stack.require("mongo")


@pytest.fixture(scope="module")
def client(mongo_settings):
    with mongo.client(mongo_settings) as c:
        yield c
