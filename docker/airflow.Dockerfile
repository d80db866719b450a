# Apache Airflow (the official image, the version infra/services/airflow.py pins) with the
# platform's code and its own virtualenv: the retrain DAG runs training with the platform's
# interpreter (Settings.platform_python), never inside Airflow's environment, as on one machine.
#   docker build -f docker/airflow.Dockerfile -t flightdelay-airflow .
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)" /usr/lib/jvm/java-17 \
    && mkdir -p /opt/flightdelay/cache /opt/airflow/data \
    && chown -R airflow:0 /opt/flightdelay /opt/airflow/data
USER airflow

ENV FD_CACHE_DIR=/opt/flightdelay/cache \
    FD_STATE_DIR=/opt/airflow/data/flightdelay \
    FD_JAVA17_HOME=/usr/lib/jvm/java-17 \
    PYTHONPATH=/opt/flightdelay/app \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/flightdelay/app/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
WORKDIR /opt/flightdelay/app

COPY --chown=airflow:0 requirements.txt constraints.txt ./
RUN python -m venv /opt/flightdelay/cache/venv \
    && /opt/flightdelay/cache/venv/bin/pip install --no-cache-dir --progress-bar off -r requirements.txt -c constraints.txt

COPY --chown=airflow:0 pyproject.toml ./
COPY --chown=airflow:0 flightdelay/ flightdelay/
COPY --chown=airflow:0 infra/ infra/
COPY --chown=airflow:0 training/ training/
COPY --chown=airflow:0 models/ models/
COPY --chown=airflow:0 dags/ dags/
WORKDIR /opt/airflow
