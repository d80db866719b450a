"""One SparkSession for every unit test that needs Spark (built the project's way, get_spark)."""
import pytest


@pytest.fixture(scope="session")
def spark(settings):
    from flightdelay.spark import get_spark

    session = get_spark(settings, "flightdelay-unit-tests")
    yield session
    session.stop()
