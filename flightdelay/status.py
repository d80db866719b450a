"""The streaming job's status record: one definition, one writer (the job's supervisor), one
reader for everyone else (the launcher's readiness probe, the status page, the bench and the
tests).

The job rewrites it every FD_MODEL_POLL_S seconds, atomically, as JSON at
``Settings.streaming_status_file``; ``JobStatus`` is what both sides see::

    JobStatus(updated_at=<epoch ms>,
              model=ModelStatus(name, version, source="mlflow" | "shipped", engine,
                                shadow_version, shadow_role),
              queries={<query name>: QueryStatus(active, id, batch, rows_per_s, offset, backlog)})

``QueryStatus``'s progress fields are None until the query has reported progress: ``batch``
and ``rows_per_s`` of its last progress report, ``offset`` (the Kafka records its last batch
has read up to) and ``backlog`` (records already waiting beyond that batch).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields

from flightdelay.config import Settings


@dataclass(frozen=True)
class QueryStatus:
    active: bool
    id: str
    batch: int | None = None
    rows_per_s: int | None = None
    offset: int | None = None
    backlog: int | None = None


@dataclass(frozen=True)
class ModelStatus:
    name: str
    version: str
    source: str
    engine: str | None = None
    shadow_version: str | None = None  # scored beside it on every request, answering no one
    shadow_role: str | None = None     # "challenger" or "previous" (schema.SHADOW_ROLES)


@dataclass(frozen=True)
class JobStatus:
    model: ModelStatus
    queries: dict[str, QueryStatus] = field(default_factory=dict)
    updated_at: int = 0

    def inactive_queries(self) -> list[str]:
        return [name for name, q in self.queries.items() if not q.active]

    def all_running(self, queries: int) -> bool:
        """True when the status lists ``queries`` queries and every one is active."""
        return len(self.queries) == queries and not self.inactive_queries()

    def archived_up_to(self, query: str) -> int:
        """Kafka records ``query`` has processed (its last batch's end offsets summed), 0 if unknown."""
        found = self.queries.get(query)
        return (found.offset or 0) if found else 0

    def batch(self, query: str) -> int | None:
        """The last completed batch of ``query``, None before its first one."""
        found = self.queries.get(query)
        return found.batch if found else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> JobStatus:
        return cls(model=ModelStatus(**_known(ModelStatus, data["model"])),
                   queries={name: QueryStatus(**_known(QueryStatus, q)) for name, q in data["queries"].items()},
                   updated_at=int(data.get("updated_at", 0)))


def _known(kind, data: dict) -> dict:
    """The keys of ``data`` that ``kind`` has: a status written by an older job still reads."""
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in data.items() if k in names}


def write(s: Settings, status: JobStatus) -> None:
    status = JobStatus(status.model, status.queries, updated_at=int(time.time() * 1000))
    path = s.streaming_status_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status.to_dict(), indent=1))
    tmp.replace(path)  # readers never see half a file


def read(s: Settings) -> JobStatus | None:
    """The last status the job wrote, or None (not written yet, unreadable, or the job is gone)."""
    try:
        return JobStatus.from_dict(json.loads(s.streaming_status_file.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def clear(s: Settings) -> None:
    """Forget the status of an earlier run (before the job starts)."""
    s.streaming_status_file.unlink(missing_ok=True)
