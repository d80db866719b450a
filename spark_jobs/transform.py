"""The job's pure transforms: Kafka rows in, Kafka rows or prediction columns out (batch or
streaming frames alike; no query, no I/O)."""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from flightdelay import schema
from flightdelay.config import Settings
from flightdelay.features import PREDICTION_COLUMN, PROBABILITIES_COLUMN, add_features
from flightdelay.serving import ServedModel
from spark_jobs.validate import ERRORS, error_summary, is_valid, validated

# Where a response record came from, kept next to its fields for dead letters.
SOURCE_COLUMNS = ("_raw", "_topic", "_partition", "_offset")


def placeholder_request(served: ServedModel) -> dict:
    """A request the model can always score, substituted into invalid rows so that one
    projection serves both outcomes; the invalid rows' scores are never used."""
    first_route = sorted(served.reference.routes)[0]
    origin, dest = first_route.split(schema.ROUTE_SEPARATOR)
    return {"Carrier": sorted(served.reference.carriers)[0], "Origin": origin, "Dest": dest,
            "FlightDate": "2013-01-01", "CRSDepTime": 1200, "CRSArrTime": 1400, "DepDelay": 0.0}


def score(requests: DataFrame, served: ServedModel, s: Settings) -> DataFrame:
    """Kafka request rows (key, value, topic, partition, offset, timestamp) -> Kafka output rows
    (key, value, topic): a prediction for the response topic or a reason for the dead-letter topic."""
    frame = validated(requests.withColumnRenamed("topic", "source_topic"), served.reference)
    valid = is_valid()
    safe = {name: F.when(valid, F.col(name)).otherwise(F.lit(value))
            for name, value in placeholder_request(served).items()}
    frame = frame.withColumns(safe)
    scored = served.predict(add_features(frame, served.reference))
    labels = F.array(*[F.lit(schema.LABELS[c]) for c in sorted(schema.LABELS)])
    prediction = F.col(PREDICTION_COLUMN).cast("int")
    now_ms = F.expr("CAST(reflect('java.lang.System', 'currentTimeMillis') AS BIGINT)")
    response_columns = {
        "Route": F.col("Route"), "Distance": F.col("Distance"), "prediction": prediction,
        "label": F.element_at(labels, prediction + 1),
        "probabilities": F.col(PROBABILITIES_COLUMN),
        "model_name": F.lit(served.name), "model_version": F.lit(served.version),
        "predicted_at": now_ms,
    }
    response = F.to_json(F.struct(*[(response_columns[n] if n in response_columns else F.col(n)).alias(n)
                                    for n in schema.RESPONSE_FIELDS]))
    dead_letter = F.to_json(F.struct(
        error_summary().alias("reason"), F.col(ERRORS).alias("fields"),
        F.col("_text").alias("raw"), F.base64(F.col("value")).alias("raw_base64"),
        F.col("key").cast("string").alias("key"), F.col("source_topic").alias("topic"),
        F.col("partition"), F.col("offset"), F.unix_millis(F.col("timestamp")).alias("timestamp"),
        now_ms.alias("rejected_at")))
    return scored.select(
        F.when(valid, F.col("UUID").cast("binary")).otherwise(F.col("key")).alias("key"),
        F.when(valid, response).otherwise(dead_letter).alias("value"),
        F.when(valid, F.lit(s.response_topic)).otherwise(F.lit(s.dlq_topic)).alias("topic"),
    )


def parse_predictions(kafka_rows: DataFrame, arrival: bool = False) -> DataFrame:
    """Response-topic rows -> one column per response field, the SOURCE_COLUMNS, and
    ``complete``: every non-optional field is there. Anything may be produced to a topic; an
    incomplete record is never archived, and the archive-mongo query forwards it to the
    dead-letter topic. ``arrival`` adds ``_kafka_at`` (the record's Kafka timestamp, epoch ms)
    and ``_key`` (its key as text), which the outcome join uses."""
    parsed = F.from_json(F.col("value").cast("string"), schema.RESPONSE_DDL)
    required = [F.col(n).isNotNull() for n in schema.RESPONSE_FIELDS if n not in schema.OPTIONAL_RESPONSE_FIELDS]
    complete = required[0]
    for condition in required[1:]:
        complete = complete & condition
    extra = {"_kafka_at": F.unix_millis(F.col("timestamp")), "_key": F.col("key").cast("string")} if arrival else {}
    return (kafka_rows.select(parsed.alias("p"), F.col("value").cast("string").alias("_raw"),
                              F.col("topic").alias("_topic"), F.col("partition").alias("_partition"),
                              F.col("offset").alias("_offset"), *(c.alias(n) for n, c in extra.items()))
            .select("p.*", *SOURCE_COLUMNS, *extra)
            .withColumn("complete", F.coalesce(complete, F.lit(False))))
