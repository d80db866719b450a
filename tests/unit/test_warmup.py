"""The predict path's warm-up (spark_jobs.warmup): what it may touch, without servers."""
from flightdelay.config import Settings
from flightdelay.reference import load_reference, sample_requests
from flightdelay.schema import validate_request
from spark_jobs.warmup import warm_up, warmup_settings, warmup_topics


def test_the_warmup_writes_only_to_private_topics():
    s = Settings()
    w = warmup_settings(s)
    touched = {w.request_topic, w.response_topic, w.dlq_topic, w.shadow_topic}
    assert touched == set(warmup_topics(w))
    assert not touched & set(s.platform_topics)
    assert (w.topic_partitions, w.predict_trigger, w.predict_linger_ms) == \
        (s.topic_partitions, s.predict_trigger, s.predict_linger_ms)


def test_its_requests_are_valid_for_the_served_model():
    reference = load_reference()
    for request in sample_requests(reference, 200, seed=31):
        validate_request(request, reference, envelope=True)


def test_switched_off_it_touches_nothing():
    assert warm_up(None, Settings(predict_warmup_requests=0), None, None, {}) is None
