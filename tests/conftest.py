import pytest

from flightdelay.config import load_settings


@pytest.fixture(scope="session")
def settings():
    return load_settings()


@pytest.fixture(scope="session")
def spark(settings):
    """One SparkSession for the whole test session, with the Kafka connector on its classpath
    (spark.jars is only read when the first SparkContext of the process starts)."""
    from flightdelay.spark import get_spark
    from infra.services.spark_connector import install_spark_connector

    install_spark_connector(settings)
    session = get_spark(settings, "flightdelay-tests")
    yield session
    session.stop()
