"""The benchmarks' verdicts and accounting and the harness's figures (pure logic and this
machine's processes; the benches themselves run in `make bench`)."""
import subprocess
import sys
import time

from bench.pipeline import Collector, held, late_responses
from flightdelay.config import load_settings
from harness.machine import CpuShares, busy, cpu_seconds, describe, jvm_child, process_tree, rss_mb
from harness.profile import summarise
from harness.stats import percentile, percentiles_ms


def step_result(**overrides):
    result = {"rate": 1000.0, "seconds": 60.0, "sent": 100, "in_time": 100, "p99_ms": 400.0, "send_seconds": 60.2}
    return {**result, **overrides}


def test_a_step_is_held_only_with_every_response_in_time_and_p99_within_the_limit():
    assert held(step_result(), 1000)
    assert not held(step_result(in_time=99), 1000)
    assert not held(step_result(p99_ms=1000.1), 1000)
    assert not held(step_result(p99_ms=None, in_time=0, sent=0), 1000)
    assert not held(step_result(send_seconds=70), 1000)  # the producer could not keep the rate


def test_late_responses_are_the_ones_after_their_steps_cutoff():
    collector = Collector(load_settings())
    collector.arrived = {"a": 10.0, "b": 25.0, "c": 31.0}
    steps = [{"sent_at": {"a": 1.0, "b": 2.0}, "cutoff": 20.0}, {"sent_at": {"c": 21.0, "d": 22.0}, "cutoff": 40.0}]
    assert late_responses(collector, steps) == 1  # b; d never came (lost, not late)


def test_collector_is_at_the_end_only_when_every_partition_was_read_to_its_watermark():
    collector = Collector(load_settings())
    collector.read_to = {0: 10, 1: 4}
    assert collector.at_end_of({0: 10, 1: 4})
    assert not collector.at_end_of({0: 10, 1: 5})
    assert collector.at_end_of({0: 10, 1: 4, 2: 0})  # an empty partition


def test_percentile_is_the_nearest_rank_of_the_sorted_values():
    values = [float(v) for v in range(100, 0, -1)]  # unsorted: percentile sorts
    assert percentile(values, 50) == 51.0  # index round(49.5) = 50: the upper of the two middle values
    assert percentile(values, 99) == 99.0
    assert percentile([], 99) is None
    assert percentiles_ms([3.14159, 1.0, 2.0]) == {"p50_ms": 2.0, "p95_ms": 3.1, "p99_ms": 3.1}
    assert percentiles_ms([], (50, 95), prefix="ack_") == {"ack_p50_ms": None, "ack_p95_ms": None}


def sample(thread, *frames):
    return {"values": {"sampledThread": {"javaName": thread},
                       "stackTrace": {"frames": [{"method": {"type": {"name": f.rsplit(".", 1)[0]},
                                                             "name": f.rsplit(".", 1)[1]}} for f in frames]}}}


def test_profile_summary_attributes_the_busiest_stage_to_predict_and_its_operations():
    predict = "Executor task launch worker for task 0.0 in stage 13.0 (TID 13)"
    archive = "Executor task launch worker for task 0.0 in stage 30.0 (TID 47)"
    events = ([sample(predict, "x.Jackson.nextToken", "y.JsonToStructs.eval", "z.KafkaDataWriter.writeAll")] * 3
              + [sample(predict, "s.HashSet.contains", "t.CategoricalSplit.shouldGoLeft",
                        "b.RandomForestClassificationModel.predictRaw")]
              + [sample(predict, "scala/collection/immutable/HashSet.contains", "u.GeneratedClass.CaseWhen_1")]
              + [sample(archive, "c.ArrowConverters.next")] * 2 + [sample("kafka-producer-network-thread", "d.Sender.run")])
    summary = summarise(events, top=2)
    assert summary["predict_samples"] == 5 and summary["samples"] == 8
    shares = summary["predict_operations_pct"]
    assert shares["JSON parse of requests"] == 60.0
    assert shares["forest evaluation (MLlib engine)"] == 20.0
    assert shares["  of which categorical splits (boxed HashSet lookups)"] == 20.0
    assert shares["request validation (IN-list lookups)"] == 20.0  # the forest's own set lookups excluded
    assert shares["Kafka sink (produce)"] == 0.0
    assert summary["predict_top_self_frames"] == ["Jackson.nextToken 60.0%", "HashSet.contains 40.0%"]


def test_profile_summary_reads_jfr_class_names_with_slashes():
    predict = "Executor task launch worker for task 1.0 in stage 4.0 (TID 5)"
    events = [sample(predict, "flightdelay/jvm/FlatForest.leafOf", "flightdelay/jvm/FlatForest.call")] * 2 + [
        sample(predict, "java/util/regex/Pattern$Dollar.match", "java/util/regex/Matcher.find")]
    summary = summarise(events, top=1)
    shares = summary["predict_operations_pct"]
    assert shares["forest evaluation (compiled engine)"] == 66.7
    assert shares["request validation (regular expressions)"] == 33.3
    assert summary["predict_top_self_frames"] == ["FlatForest.leafOf 66.7%"]


def test_machine_description_and_busy_share():
    host = describe()
    assert host["cores"] >= 1 and host["cpu"] and host["memory_gib"] > 0
    state = busy(0.2)
    assert 0 <= state["cpu_busy_pct"] <= 100


BURN = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"


def test_process_figures_of_a_process_tree():
    shell = subprocess.Popen(["/bin/sh", "-c", f"{sys.executable} -c 'import time; time.sleep(3)'; true"])
    try:
        time.sleep(0.3)  # the child of the shell exists
        tree = process_tree(shell.pid)
        assert [p.pid for p in tree][:1] == [shell.pid] and len(tree) == 2
        assert rss_mb(tree) > rss_mb(tree[1:]) > 1  # a Python interpreter holds a few MB
        assert cpu_seconds(shell.pid) >= 0
        assert jvm_child(shell.pid) is None  # no java below it
    finally:
        shell.kill()
        shell.wait(10)
    assert process_tree(shell.pid) == []  # ended: left out


def test_browsers_are_dealt_over_at_most_the_client_processes_asked_for():
    from bench.webapp import spread

    assert spread(list(range(5)), 2) == [[0, 2, 4], [1, 3]]
    assert spread([0, 1], 5) == [[0], [1]]
    assert sorted(x for group in spread(list(range(50)), 5) for x in group) == list(range(50))


def test_stages_of_a_submission_add_up_to_its_latency():
    from bench.webapp import stages_of

    in_, job, out = stages_of(1000.0, {"requested_at": 1012, "predicted_at": 1050}, 1090.0)
    assert (in_, job, out) == (12, 38, 40.0)
    assert in_ + job + out == 1090.0 - 1000.0


def test_cpu_shares_charge_a_group_with_its_children_and_leave_the_rest_to_other():
    parent = subprocess.Popen(["/bin/sh", "-c", f"{sys.executable} -c '{BURN}'; true"])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    try:
        time.sleep(0.2)  # the child of the shell exists
        shares = CpuShares(lambda: {"burner (via its shell)": [parent.pid], "sleeper": [sleeper.pid]})
        shares.start()
        time.sleep(1.0)
        result = shares.stop()
    finally:
        parent.wait(10)
        sleeper.kill()
    assert result["burner (via its shell)"] > 20  # a busy loop, counted through its parent shell
    assert result["sleeper"] < 5
    assert set(result) == {"burner (via its shell)", "sleeper", "other"} and result["other"] >= 0
