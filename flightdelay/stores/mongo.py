"""MongoDB (FerretDB on the local stack): the prediction collection
``FD_MONGO_DATABASE.FD_MONGO_COLLECTION``, one document per request UUID (``_id``).

Created with its indexes by the launcher (``ensure_collection``), written by the job's
archive-mongo query (``MongoWriter``: insert-if-absent), read by the web app (one prediction,
the history page), the bench and the tests.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from flightdelay.config import Settings
from flightdelay.stores import Refused

log = logging.getLogger(__name__)

# Indexes of the prediction collection, as (key list, name): the history page's newest-first
# sort and its main filter (a route on a date), for a real MongoDB. FerretDB v1 on SQLite uses
# no secondary index for queries and every index costs insert time, so only these two are kept
# (README, "Measured choices"). FerretDB rejects partial, TTL and text indexes.
INDEXES: tuple[tuple[tuple[tuple[str, int], ...], str], ...] = (
    ((("requested_at", -1),), "requested_at_-1"),
    ((("Route", 1), ("FlightDate", 1)), "Route_1_FlightDate_1"),
)
HISTORY_FILTERS = ("Route", "Carrier", "FlightDate", "model_version")
DUPLICATE_KEY = 11000
# Write errors that say the document itself is wrong (BadValue, FailedToParse, TypeMismatch,
# DollarPrefixedFieldName, InvalidDBRef, EmptyFieldName, DottedFieldName, BSONObjectTooLarge,
# DocumentValidationFailure, KeyTooLong): sending it again cannot succeed.
REFUSED_DOCUMENT = frozenset({2, 9, 14, 52, 55, 56, 57, 10334, 121, 17280})


def client(s: Settings, timeout_ms: int = 5000):
    from pymongo import MongoClient

    return MongoClient(s.mongo_uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)


def collection(c, s: Settings):
    """The prediction collection of client ``c``."""
    return c[s.mongo_database][s.mongo_collection]


# -- schema ------------------------------------------------------------------------------------
def ensure_collection(s: Settings) -> list[str]:
    """Create the prediction collection and its indexes, drop indexes no longer declared in
    INDEXES (an older layout); idempotent. Returns what it changed, one line per change."""
    from pymongo import IndexModel
    from pymongo.errors import CollectionInvalid

    changes = []
    with client(s) as c:
        db = c[s.mongo_database]
        if s.mongo_collection not in db.list_collection_names(filter={"name": s.mongo_collection}):
            try:
                db.create_collection(s.mongo_collection)
                changes.append(f"created collection {s.mongo_database}.{s.mongo_collection}")
            except CollectionInvalid:  # created meanwhile by someone else
                pass
        coll = db[s.mongo_collection]
        have = set(coll.index_information())
        for obsolete in sorted(have - {name for _, name in INDEXES} - {"_id_"}):
            coll.drop_index(obsolete)
            changes.append(f"dropped index {obsolete} (no longer declared)")
        missing = [IndexModel(list(keys), name=name) for keys, name in INDEXES if name not in have]
        if missing:
            coll.create_indexes(missing)
            changes.append(f"created indexes {', '.join(m.document['name'] for m in missing)}")
    return changes


def drop_collection(s: Settings) -> None:
    with client(s) as c:
        c[s.mongo_database].drop_collection(s.mongo_collection)


# -- writing -----------------------------------------------------------------------------------
def document(p: dict) -> dict:
    """The prediction as stored: its response fields (not the Kafka provenance columns, which
    start with "_"), keyed by the request UUID."""
    doc = {k: v for k, v in p.items() if not k.startswith("_")}
    doc["_id"] = p["UUID"]
    return doc


def unstorable(value, path: str = "") -> str | None:
    """Why FerretDB would refuse ``value`` (a document or part of one), or None. FerretDB v1
    refuses NaN and infinite numbers, keys starting with "$" or containing ".", and arrays
    inside arrays; on a NaN it even drops the whole connection, which would look like an
    outage and be retried forever, so documents are checked before they are sent."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path or 'value'} is {value} (FerretDB stores finite numbers only)"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key or key.startswith("$") or "." in key:
                return f"key {str(key)[:40]!r} in {path or 'the document'} (empty, starting with $ or containing .)"
            reason = unstorable(item, f"{path}.{key}" if path else key)
            if reason:
                return reason
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if isinstance(item, (list, tuple)):
                return f"{path}[{i}] is an array inside an array (FerretDB has no nested arrays)"
            reason = unstorable(item, f"{path}[{i}]")
            if reason:
                return reason
    return None


class MongoWriter:
    """Insert-if-absent keyed by the request UUID (``_id``): ``insert_many(ordered=False)``
    and duplicate-key errors (a replayed prediction) are ignored, so a UUID has exactly one
    document, the first prediction stored for it.

    Why not ReplaceOne upserts: FerretDB 1.24 on SQLite runs every upsert as a query plus an
    update (far slower than inserts), and a command that replaces about 100 existing documents
    exhausts its connection pool and hangs the server for every client (README, "Measured
    choices")."""

    CHUNK = 1000

    def __init__(self, s: Settings):
        self.s = s
        self._client = None

    def collection(self):
        if self._client is None:
            self._client = client(self.s)
        return collection(self._client, self.s)

    def convert(self, p: dict) -> dict:
        """The document of ``p``; ValueError if the server would refuse it (a dead letter)."""
        doc = document(p)
        reason = unstorable(doc)
        if reason:
            raise ValueError(reason)
        return doc

    def write(self, docs: list[dict]) -> int:
        """Insert ``docs``; return how many are stored. Raises Refused (after writing the rest)
        when the server refused documents for good, and any other error to be retried."""
        from pymongo.errors import BulkWriteError

        refused: dict[int, str] = {}
        for start in range(0, len(docs), self.CHUNK):
            try:
                self.collection().insert_many(docs[start:start + self.CHUNK], ordered=False)
            except BulkWriteError as exc:
                errors = [e for e in exc.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
                if exc.details.get("writeConcernErrors") or any(e.get("code") not in REFUSED_DOCUMENT for e in errors):
                    raise
                refused.update({start + e["index"]: f"MongoDB refused it: {e.get('errmsg', '')[:300]} "
                                                    f"(code {e.get('code')})" for e in errors})
        if refused:
            raise Refused(len(docs) - len(refused), refused)
        return len(docs)

    def reset(self):
        """Drop the connection after a failure so the next attempt reconnects."""
        if self._client is not None:
            self._client.close()
        self._client = None


# -- reading -----------------------------------------------------------------------------------
@dataclass
class HistoryPage:
    rows: list[dict]
    total: int
    page: int
    page_size: int
    filters: dict = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def find_prediction(coll, uuid: str) -> dict | None:
    """The stored prediction of ``uuid`` (its response fields), or None."""
    doc = coll.find_one({"_id": uuid})
    if doc is not None:
        doc.pop("_id", None)
    return doc


def history(coll, filters: dict, page: int = 1, page_size: int = 25) -> HistoryPage:
    """Predictions matching ``filters`` (exact values of HISTORY_FILTERS), newest request first."""
    query = {k: v for k, v in filters.items() if k in HISTORY_FILTERS and v}
    page = max(1, page)
    total = coll.count_documents(query)
    cursor = (coll.find(query, {"_id": 0}).sort("requested_at", -1)
              .skip((page - 1) * page_size).limit(page_size))
    return HistoryPage(list(cursor), total, page, page_size, query)


def find_by_uuids(coll, uuids) -> list[dict]:
    return list(coll.find({"_id": {"$in": list(uuids)}}))


def stored_uuids(coll) -> list[str]:
    """The UUID of every document (a full scan: for counting after a bench run)."""
    return [d["UUID"] for d in coll.find({}, {"UUID": 1, "_id": 0})]
