"""The job's pure transforms: Kafka rows in, Kafka rows or prediction columns out (batch or
streaming frames alike; no query, no I/O)."""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from flightdelay import schema
from flightdelay.config import Settings
from flightdelay.features import PREDICTION_COLUMN, PROBABILITIES_COLUMN, add_features
from flightdelay.reference import Reference
from flightdelay.serving import ServedModel, ShadowModel
from spark_jobs.frontier import REQUEST_HEADER
from spark_jobs.validate import ERRORS, VALID, error_summary, is_valid, validated

# Where a response record came from, kept next to its fields for dead letters.
SOURCE_COLUMNS = ("_raw", "_topic", "_partition", "_offset")
UNSCORABLE = "_unscorable"  # why the shadow model cannot score a valid request, or null
SHADOW_VALUE = "_shadow_value"


def now_ms() -> Column:
    """The time a row is scored (epoch ms), read per row."""
    return F.expr("CAST(reflect('java.lang.System', 'currentTimeMillis') AS BIGINT)")


def placeholder_request(served: ServedModel) -> dict:
    """A request the model can always score, substituted into invalid rows so that one
    projection serves both outcomes; the invalid rows' scores are never used."""
    first_route = sorted(served.reference.routes)[0]
    origin, dest = first_route.split(schema.ROUTE_SEPARATOR)
    return {"Carrier": sorted(served.reference.carriers)[0], "Origin": origin, "Dest": dest,
            "FlightDate": "2013-01-01", "CRSDepTime": 1200, "CRSArrTime": 1400, "DepDelay": 0.0}


def score(requests: DataFrame, served: ServedModel, s: Settings, shadow: ShadowModel | None = None) -> DataFrame:
    """Kafka request rows (key, value, topic, partition, offset, timestamp) -> Kafka output rows
    (key, value, topic): a prediction for the response topic or a reason for the dead-letter topic;
    with ``shadow``, each valid request also gets a row for the shadow topic (``shadow_rows``)."""
    frame = validated(requests.withColumnRenamed("topic", "source_topic"), served.reference)
    valid = is_valid()
    safe = {name: F.when(valid, F.col(name)).otherwise(F.lit(value))
            for name, value in placeholder_request(served).items()}
    frame = frame.withColumns(safe)
    scored = served.predict(add_features(frame, served.reference))
    dead_letter = F.to_json(F.struct(
        error_summary().alias("reason"), F.col(ERRORS).alias("fields"),
        F.col("_text").alias("raw"), F.base64(F.col("value")).alias("raw_base64"),
        F.col("key").cast("string").alias("key"), F.col("source_topic").alias("topic"),
        F.col("partition"), F.col("offset"), F.unix_millis(F.col("timestamp")).alias("timestamp"),
        now_ms().alias("rejected_at")))
    answers = scored.select(
        F.when(valid, F.col("UUID").cast("binary")).otherwise(F.col("key")).alias("key"),
        F.when(valid, F.to_json(prediction_struct(served))).otherwise(dead_letter).alias("value"),
        F.when(valid, F.lit(s.response_topic)).otherwise(F.lit(s.dlq_topic)).alias("topic"),
        request_header().alias("headers"),
        *([] if shadow is None else [valid.alias(VALID), *schema.REQUEST_FIELDS]),
    )
    return answers if shadow is None else shadow_rows(answers, served, shadow, s)


def request_header() -> Column:
    """The Kafka headers of an output record: which request it answers (spark_jobs.frontier),
    so that a restarted predict query skips the requests already answered."""
    where = F.concat_ws(":", F.col("partition"), F.col("offset"), F.unix_millis(F.col("timestamp")))
    return F.array(F.struct(F.lit(REQUEST_HEADER).alias("key"), where.cast("binary").alias("value")))


def prediction_struct(model: ServedModel) -> Column:
    """The response record (schema.RESPONSE_FIELDS) of the rows ``model.predict`` just scored."""
    labels = F.array(*[F.lit(schema.LABELS[c]) for c in sorted(schema.LABELS)])
    prediction = F.col(PREDICTION_COLUMN).cast("int")
    computed = {
        "Route": F.col("Route"), "Distance": F.col("Distance"), "prediction": prediction,
        "label": F.element_at(labels, prediction + 1),
        "probabilities": F.col(PROBABILITIES_COLUMN),
        "model_name": F.lit(model.name), "model_version": F.lit(model.version),
        "predicted_at": now_ms(),
    }
    return F.struct(*[computed.get(n, F.col(n)).alias(n) for n in schema.RESPONSE_FIELDS])


def shadow_rows(answers: DataFrame, served: ServedModel, shadow: ShadowModel, s: Settings) -> DataFrame:
    """The champion's Kafka rows (``answers``: key, value, topic, the validity and the request
    fields) and, for each valid request, a second row for the shadow topic: the request scored by
    the shadow model, its features derived with ITS reference data (schema.SHADOW_FIELDS).

    One projection: the request is parsed and validated once, the shadow model scores the
    columns already there, and both rows leave the same task together, the answer first. A
    request the shadow model cannot score (``unscorable``) gets a record without a prediction;
    it never changes the answer nor becomes a dead letter. Invalid requests get no shadow row."""
    model = shadow.model
    unscorable = unscorable_reason(model.reference, served.reference)
    scored = model.predict(add_features(answers.withColumn(UNSCORABLE, unscorable), model.reference))
    record = prediction_struct(model)
    nulled = {"prediction", "label", "probabilities"}
    scorable = F.col(UNSCORABLE).isNull()
    fields = [F.when(scorable, record[n]).alias(n) if n in nulled else record[n].alias(n)
              for n in schema.RESPONSE_FIELDS]
    value = F.to_json(F.struct(*fields, F.lit(shadow.role).alias("role"),
                               F.lit(served.version).alias("champion_version"),
                               F.col(UNSCORABLE).alias("unscorable")),
                      {"ignoreNullFields": "false"})  # every key present: null = not applicable
    # The shadow value in a projection of its own: the clock read in it is nondeterministic,
    # which Spark allows in a projection but not in a generator's argument.
    both = scored.select("key", "value", "topic", "headers", VALID, value.alias(SHADOW_VALUE))
    answer = F.struct(F.col("key"), F.col("value"), F.col("topic"), F.col("headers"))
    in_shadow = F.struct(F.col("key"), F.col(SHADOW_VALUE).alias("value"), F.lit(s.shadow_topic).alias("topic"),
                         F.col("headers"))
    return both.select(F.inline(F.when(F.col(VALID), F.array(answer, in_shadow)).otherwise(F.array(answer))))


def unscorable_reason(reference: Reference, validated_with: Reference) -> Column:
    """Why a valid request (checked against ``validated_with``, the champion's reference) is not
    one ``reference`` can score: its carrier, an airport or the route unknown to it; null when
    it can. A reference knowing everything the validation knew makes it a null literal."""
    covers = (set(validated_with.carriers) <= set(reference.carriers)
              and set(validated_with.airports) <= set(reference.airports)
              and set(validated_with.routes) <= set(reference.routes))
    if covers:
        return F.lit(None).cast("string")
    route = F.concat_ws(schema.ROUTE_SEPARATOR, F.col("Origin"), F.col("Dest"))
    checks = (("Carrier", F.col("Carrier"), reference.carriers, "airline"),
              ("Origin", F.col("Origin"), reference.airports, "airport"),
              ("Dest", F.col("Dest"), reference.airports, "airport"),
              (schema.ROUTE_ERROR_FIELD, route, reference.routes, "route"))
    reason = F.lit(None).cast("string")
    for field, value, known, what in reversed(checks):
        reason = F.when(~value.isin(sorted(known)), F.concat(F.lit(f"{field}: unknown {what} "), value)) \
            .otherwise(reason)
    return reason


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
