"""Where the streaming job's JVM spends its CPU: a Java Flight Recording of the job under load,
summarised as the share of the predict query's samples spent in each candidate operation and
its top self frames. Used by ``bench.pipeline --jfr FILE``.
"""
from __future__ import annotations

import collections
import json
import re
import subprocess
from pathlib import Path

from flightdelay.config import Settings
from harness.machine import jvm_child

# The predict query's candidate costs (issue: measure, don't assume): the frame that marks each,
# and a frame that must not be on the same stack (the forest's categorical splits look their
# categories up in a Scala HashSet, as the validation's IN lists do).
OPERATIONS = {
    "forest evaluation (MLlib engine)": ("RandomForestClassificationModel.predictRaw", None),
    "  of which categorical splits (boxed HashSet lookups)": ("CategoricalSplit.shouldGoLeft", None),
    "string indexing": ("StringIndexerModel", None),
    "vector assembly": ("VectorAssembler", None),
    "forest evaluation (compiled engine)": ("FlatForest.call", None),
    "JSON parse of requests": ("JsonToStructs", None),
    "JSON serialise of responses": ("StructsToJson", None),
    "request validation (IN-list lookups)": ("HashSet.contains", "RandomForestClassificationModel"),
    "request validation (date parsing)": ("TimestampFormatter.parse", None),
    "request validation (regular expressions)": ("java.util.regex.", None),
    "Kafka sink (produce)": ("KafkaProducer.send", None),
    "Kafka source (fetch)": ("KafkaDataConsumer", None),
}
STAGE = re.compile(r"in stage (\d+)\.")


def java_tool(s: Settings, name: str) -> str:
    return str(Path(s.java17_home) / "bin" / name)


class FlightRecording:
    def __init__(self, s: Settings, job_pid: int, path: Path):
        self.s, self.path = s, path
        self.pid = jvm_child(job_pid)
        if self.pid is None:
            raise RuntimeError(f"no JVM under the job's process {job_pid}")

    def _jcmd(self, *args: str) -> None:
        subprocess.run([java_tool(self.s, "jcmd"), str(self.pid), *args], check=True, capture_output=True, text=True)

    def start(self) -> None:
        self._jcmd("JFR.start", "name=bench", "settings=profile", f"filename={self.path}")

    def stop(self) -> None:
        self._jcmd("JFR.stop", "name=bench")

    def summary(self, top: int = 12) -> dict:
        out = subprocess.run([java_tool(self.s, "jfr"), "print", "--json", "--stack-depth", "96",
                              "--events", "jdk.ExecutionSample", str(self.path)],
                             check=True, capture_output=True, text=True).stdout
        return summarise(json.loads(out)["recording"]["events"], top)


def frame_name(frame: dict) -> str:
    """``package.Class.method``: JFR writes class names with slashes (``java/util/regex/Matcher``)."""
    return f"{frame['method']['type']['name'].replace('/', '.')}.{frame['method']['name']}"


def short_name(frame: str) -> str:
    return ".".join(frame.rsplit(".", 2)[-2:])


def summarise(events: list[dict], top: int) -> dict:
    """The predict query is the stage whose task threads hold the most samples (its real-time
    tasks run for the whole batch; the archive queries' tasks come and go)."""
    by_stage, threads = collections.defaultdict(list), collections.Counter()
    for event in events:
        thread = ((event["values"].get("sampledThread") or {}).get("javaName")) or "?"
        threads[re.sub(r"\d+", "N", thread.split(" [id")[0])] += 1
        match = STAGE.search(thread)
        if match:
            by_stage[match.group(1)].append([frame_name(f) for f in event["values"]["stackTrace"]["frames"]])
    total = len(events)
    if not by_stage:
        return {"samples": total, "predict_samples": 0}
    stacks = max(by_stage.values(), key=len)
    def share(marker: str, excluded: str | None) -> float:
        hits = sum(1 for st in stacks if any(marker in f for f in st)
                   and not (excluded and any(excluded in f for f in st)))
        return round(100 * hits / len(stacks), 1)

    shares = {op: share(marker, excluded) for op, (marker, excluded) in OPERATIONS.items()}
    self_frames = collections.Counter(short_name(st[0]) for st in stacks if st)
    return {"samples": total, "predict_samples": len(stacks),
            "predict_share_of_jvm_pct": round(100 * len(stacks) / max(1, total), 1),
            "predict_operations_pct": shares,
            "predict_top_self_frames": [f"{name} {100 * n / len(stacks):.1f}%" for name, n in self_frames.most_common(top)],
            "threads": [f"{name}: {100 * n / max(1, total):.1f}%" for name, n in threads.most_common(6)]}
