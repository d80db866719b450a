"""The web app's validator (schema.validate_request) and the streaming job's Spark rules
(spark_jobs.validate) agree on arbitrary input: whatever the web app accepts, the job scores,
and on a message produced straight to Kafka both give the same verdict for the same fields.

Property-based (hypothesis): arbitrary Unicode text, numbers of every size, NaN/Infinity,
booleans, nulls, and near-valid values (codes with Unicode look-alikes, digits of other
scripts, stray whitespace). Each example is a batch of requests checked in one Spark job.
"""
import json
import uuid as uuidlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flightdelay.reference import load_reference
from flightdelay.schema import FIELDS, USER_FIELDS, ValidationError, validate_request
from spark_jobs.validate import ERRORS, validated

REFERENCE = load_reference()
GOOD = {"Carrier": "UA", "Origin": "EWR", "Dest": "IAH", "FlightDate": "2013-01-03", "CRSDepTime": 529,
        "CRSArrTime": 830, "DepDelay": 2.0, "FlightNum": 1545}
BATCH = 40
EXAMPLES = 10

whitespace = st.sampled_from(["", " ", "\t", "\n", "\u00a0", "\u2003", "\u3000", "\x0b", "\x0c", "\r"])
lookalike_digits = st.sampled_from(["0", "5", "\u0665", "\u0967", "\uff15", "\u1815", "\U0001d7d3"])
lookalike_letters = st.sampled_from(["U", "u", "\u00df", "\ufb01", "\u0131", "\uff35", "\u0392", "\u212a"])


@st.composite
def near_code(draw, size):
    chars = draw(st.lists(st.one_of(lookalike_letters, lookalike_digits, st.sampled_from("AEIWRHJFKLGX9")),
                          min_size=size - 1, max_size=size + 1))
    return draw(whitespace) + "".join(chars) + draw(whitespace)


@st.composite
def near_number(draw):
    digits = "".join(draw(st.lists(lookalike_digits, min_size=1, max_size=5)))
    return draw(st.sampled_from(["", "-", "+"])) + digits + draw(st.sampled_from(["", ".5", "e1", "_0"]))


def numbers():
    return st.one_of(st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                     st.floats(allow_nan=True, allow_infinity=True), st.just(10 ** 400))


def anything():
    return st.one_of(st.none(), st.booleans(), numbers(), st.text(max_size=12), near_number(),
                     st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


def field_value(name):
    kind = FIELDS[name].kind
    specific = {
        "code": st.one_of(near_code(2 if name == "Carrier" else 3),
                          st.sampled_from(sorted(REFERENCE.carriers if name == "Carrier" else REFERENCE.airports))),
        "date": st.one_of(st.dates().map(str), st.builds(lambda w, d: w + d, whitespace, st.dates().map(str)),
                          st.text(alphabet="0123456789-\u0661\uff10", min_size=10, max_size=10)),
        "hhmm": st.one_of(st.integers(min_value=-10, max_value=2500), near_number()),
        "float": st.one_of(st.floats(min_value=-200, max_value=1500), near_number()),
        "int": st.one_of(st.integers(min_value=-5, max_value=12000), near_number()),
        "uuid": st.one_of(st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()),
                          st.uuids().map(lambda u: u.hex), st.uuids().map(lambda u: "{%s}" % u)),
        "epoch_ms": st.one_of(st.integers(min_value=-5, max_value=2 ** 64), st.just(1_700_000_000_000)),
    }[kind]
    return st.one_of(specific, specific, anything())


@st.composite
def request(draw, names):
    out = {}
    for name in names:
        choice = draw(st.integers(min_value=0, max_value=9))
        if choice < 5 and name in GOOD:
            out[name] = GOOD[name]
        elif choice == 5:
            continue  # absent
        else:
            out[name] = draw(field_value(name))
    if "UUID" in names and "UUID" not in out and draw(st.booleans()):
        out["UUID"] = str(uuidlib.uuid4())
    return out


def spark_errors(spark, messages: list[bytes]) -> list[dict]:
    df = spark.createDataFrame([(i, m) for i, m in enumerate(messages)], "i int, value binary")
    rows = validated(df, REFERENCE).select("i", ERRORS).collect()
    return [dict(r[ERRORS]) for r in sorted(rows, key=lambda r: r["i"])]


def python_errors(payload, envelope) -> set:
    try:
        validate_request(payload, REFERENCE, envelope=envelope)
        return set()
    except ValidationError as exc:
        return set(exc.fields)


def as_web_app_publishes(clean: dict) -> bytes:
    return json.dumps(dict(clean, UUID=str(uuidlib.uuid4()), requested_at=1_700_000_000_000)).encode()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(request(USER_FIELDS), min_size=BATCH, max_size=BATCH))
def test_whatever_the_web_app_accepts_the_job_scores(spark, batch):
    accepted = []
    for payload in batch:
        try:
            accepted.append(validate_request(payload, REFERENCE))
        except ValidationError:
            pass
    messages = [as_web_app_publishes(clean) for clean in accepted]
    for clean, errors in zip(accepted, spark_errors(spark, messages) if messages else []):
        assert errors == {}, (clean, errors)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(request(("UUID",) + USER_FIELDS + ("requested_at",)), min_size=BATCH, max_size=BATCH))
def test_a_message_on_kafka_gets_the_same_verdict_from_both(spark, batch):
    texts = [json.dumps(payload) for payload in batch]
    for text, errors in zip(texts, spark_errors(spark, [t.encode() for t in texts])):
        expected = python_errors(json.loads(text), envelope=True)
        assert set(errors) == expected, (text, errors)
