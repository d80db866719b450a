# The platform's own code in one image: web app, streaming job, training, the one-shot init
# (python -m infra bootstrap) and NiFi's flow file (python -m infra nifi-flow). Every process is
# configured through FD_* variables (python -m flightdelay.config), as on one machine.
#   docker build -f docker/platform.Dockerfile -t flightdelay-platform .
FROM python:3.11-slim-bookworm

# Java 17 for pyspark's JVM, the JDK since the job builds its compiled-forest UDF with javac;
# Maven and npm fetch the Kafka connector jars and the browser's Socket.IO client at build time (python -m infra install), exactly as `make up` does.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       openjdk-17-jdk-headless maven npm procps \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)" /usr/lib/jvm/java-17

ENV FD_CACHE_DIR=/opt/flightdelay/cache \
    FD_STATE_DIR=/var/lib/flightdelay \
    FD_JAVA17_HOME=/usr/lib/jvm/java-17 \
    FD_HOST=0.0.0.0 \
    PYTHONPATH=/opt/flightdelay/app \
    PYTHONUNBUFFERED=1
ENV PATH=/opt/flightdelay/cache/venv/bin:$PATH
WORKDIR /opt/flightdelay/app

COPY requirements.txt constraints.txt ./
RUN python -m venv /opt/flightdelay/cache/venv \
    && pip install --no-cache-dir --progress-bar off -r requirements.txt -c constraints.txt

COPY pyproject.toml ./
COPY flightdelay/ flightdelay/
COPY infra/ infra/
COPY spark_jobs/ spark_jobs/
COPY webapp/ webapp/
COPY training/ training/
COPY nifi/ nifi/
COPY models/ models/
RUN python -m infra install streaming webapp

EXPOSE 5001 4040
CMD ["python", "-m", "flightdelay.config"]
