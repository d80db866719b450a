"""MongoDB (FerretDB on the local stack): the prediction collection
``FD_MONGO_DATABASE.FD_MONGO_COLLECTION``, one document per request UUID (``_id``).

Created with its indexes by the launcher (``ensure_collection``), written by the job's
archive-mongo query (``MongoWriter``: insert-if-absent, plus per-day counts in
``<collection>_days``), read by the web app (one prediction, the history page: ``history``), the
bench (bench/queries.py) and the tests.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from flightdelay.config import Settings
from flightdelay.stores import Refused

log = logging.getLogger(__name__)

# The history page is served by equality queries only (module "History at scale" below):
# each document carries its request's UTC day, hour, 10-minute slot, second and hundredth of a
# second as bucket keys, and a small summary collection (``<collection>_days``: one document per
# request day, one per 10-minute slot, one per second that holds many) counts what each holds.
BUCKET_FIELDS = ("requested_day", "requested_hour", "requested_slot", "requested_sec", "requested_cs")
# Summary dimensions: the filters whose per-day counts let a walk skip days without matches.
SUMMARY_DIMENSIONS = ("Route", "Carrier", "prediction")
HISTORY_FILTERS = ("Route", "Carrier", "FlightDate", "model_version", "prediction")
# FerretDB on PostgreSQL pushes top-level equalities down as ``_jsonb->'f' @> v``: one GIN
# expression index per key serves them (infra.services.mongo.ensure_postgres_indexes).
# ``_id`` too: FerretDB's own unique index on it is a btree, so even a lookup by UUID (the
# API's GET /predictions/<uuid>) scanned the table: 2.5 s at a million predictions.
POSTGRES_GIN_FIELDS = ("_id", *BUCKET_FIELDS, "Route", "Carrier", "prediction")
# The summary collection is read by ``_id`` alone (a day, a busy slot, a busy second): without an
# index of its own every such lookup scanned its table, which grows with every busy second (one
# summary each), so a walk or a count over many days paid a scan per day.
POSTGRES_SUMMARY_GIN_FIELDS = ("_id",)


def postgres_gin_fields(collection: str) -> dict[str, tuple[str, ...]]:
    """The keys to GIN-index on FerretDB's tables of ``collection`` and of its summary."""
    return {collection: POSTGRES_GIN_FIELDS, f"{collection}_days": POSTGRES_SUMMARY_GIN_FIELDS}
# Indexes for a real MongoDB (docker-compose): the bucket keys. FerretDB gets none of these:
# its own indexes are btree on ``_jsonb->'f'``, which no pushed-down query can use, and each
# one costs insert time (docs/stores-and-querying.md).
INDEXES: tuple[tuple[tuple[tuple[str, int], ...], str], ...] = tuple(
    (((key, 1), ("requested_at", -1)), f"{key}_1_requested_at_-1") for key in BUCKET_FIELDS)
DUPLICATE_KEY = 11000
# Write errors that say the document itself is wrong (BadValue, FailedToParse, TypeMismatch,
# DollarPrefixedFieldName, InvalidDBRef, EmptyFieldName, DottedFieldName, BSONObjectTooLarge,
# DocumentValidationFailure, KeyTooLong): sending it again cannot succeed.
REFUSED_DOCUMENT = frozenset({2, 9, 14, 52, 55, 56, 57, 10334, 121, 17280})
ALL_DAYS = "all"  # the summary document over every day: overall counts, first and last day


def client(s: Settings, timeout_ms: int = 5000):
    from pymongo import MongoClient

    return MongoClient(s.mongo_uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)


def collection(c, s: Settings):
    """The prediction collection of client ``c``."""
    return c[s.mongo_database][s.mongo_collection]


def summary_collection(c, s: Settings):
    """The per-day counts of the prediction collection (see ``DaySummary``)."""
    return c[s.mongo_database][f"{s.mongo_collection}_days"]


# -- schema ------------------------------------------------------------------------------------
def ensure_collection(s: Settings, mongo_indexes: bool = True) -> list[str]:
    """Create the prediction collection, its summary collection and (``mongo_indexes``, for a
    real MongoDB) its indexes, drop indexes not declared in INDEXES (an older layout, or all
    of them on FerretDB); idempotent. Returns what it changed, one line per change."""
    from pymongo import IndexModel
    from pymongo.errors import CollectionInvalid

    changes = []
    with client(s) as c:
        db = c[s.mongo_database]
        for name in (s.mongo_collection, summary_collection(c, s).name):
            if name not in db.list_collection_names(filter={"name": name}):
                try:
                    db.create_collection(name)
                    changes.append(f"created collection {s.mongo_database}.{name}")
                except CollectionInvalid:  # created meanwhile by someone else
                    pass
        coll = db[s.mongo_collection]
        declared = {name for _, name in INDEXES} if mongo_indexes else set()
        have = set(coll.index_information())
        for obsolete in sorted(have - declared - {"_id_"}):
            coll.drop_index(obsolete)
            changes.append(f"dropped index {obsolete} (not declared for this server)")
        missing = [IndexModel(list(keys), name=name) for keys, name in INDEXES
                   if mongo_indexes and name not in have]
        if missing:
            coll.create_indexes(missing)
            changes.append(f"created indexes {', '.join(m.document['name'] for m in missing)}")
    return changes


def drop_collection(s: Settings) -> None:
    with client(s) as c:
        c[s.mongo_database].drop_collection(s.mongo_collection)
        c[s.mongo_database].drop_collection(summary_collection(c, s).name)


# -- writing -----------------------------------------------------------------------------------
def request_slot(requested_at_ms: int) -> str:
    """The UTC 10-minute slot of a request, ``YYYY-MM-DDTHH:M`` (M: tens of minutes); its first
    13 characters are the hour, its first 10 the day."""
    return datetime.fromtimestamp(requested_at_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M")[:-1]


def request_second(requested_at_ms: int) -> str:
    """The UTC second of a request, ``YYYY-MM-DDTHH:MM:SS`` (its first 15 characters are the slot
    but for the minute's unit, its first 16 the minute)."""
    return datetime.fromtimestamp(requested_at_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def request_centisecond(requested_at_ms: int) -> str:
    """The hundredth of a second of a request, ``YYYY-MM-DDTHH:MM:SS.cc``."""
    return f"{request_second(requested_at_ms)}.{requested_at_ms % 1000 // 10:02d}"


def second_field(second: str) -> str:
    """A second's field in its slot's summary: the minute's unit and the seconds (``742``),
    ordered as time within the slot."""
    return second[15] + second[17:19]


def second_of(slot: str, field_name: str) -> str:
    return f"{slot}{field_name[0]}:{field_name[1:]}"


def request_hour(requested_at_ms: int) -> str:
    """The UTC hour of a request, ``YYYY-MM-DDTHH`` (its first 10 characters are the day)."""
    return request_slot(requested_at_ms)[:13]


def document(p: dict) -> dict:
    """The prediction as stored: its response fields (not the Kafka provenance columns, which
    start with "_"), keyed by the request UUID, plus its bucket keys (BUCKET_FIELDS)."""
    doc = {k: v for k, v in p.items() if not k.startswith("_")}
    doc["_id"] = p["UUID"]
    at = int(p["requested_at"])
    slot = request_slot(at)
    doc["requested_day"], doc["requested_hour"], doc["requested_slot"] = slot[:10], slot[:13], slot
    doc["requested_cs"] = request_centisecond(at)
    doc["requested_sec"] = doc["requested_cs"][:19]
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

def response_fields(doc: dict) -> dict:
    """A stored document without its storage keys (``_id``, the bucket keys)."""
    return {k: v for k, v in doc.items() if k != "_id" and k not in BUCKET_FIELDS}


def summary_increments(docs: list[dict]) -> dict[str, dict[str, int]]:
    """Per request day, the ``$inc`` of the day's summary document for ``docs``: the total,
    per hour (``hours.HH``), per 10-minute slot (``slots.HHM``), per value of each
    SUMMARY_DIMENSIONS."""
    days: dict[str, Counter] = {}
    for doc in docs:
        day, slot = doc["requested_day"], doc["requested_slot"]
        inc = days.setdefault(day, Counter())
        inc["n"] += 1
        inc[f"hours.{slot[11:13]}"] += 1
        inc[f"slots.{slot[11:13]}{slot[14]}"] += 1
        for dim in SUMMARY_DIMENSIONS:
            inc[f"{dim}.{doc.get(dim)}"] += 1
    return {day: dict(inc) for day, inc in days.items()}


def update_summary(summary, docs: list[dict], coll=None) -> None:
    """Count ``docs`` in the per-day summary: one upsert per day touched plus one for ALL_DAYS,
    then the finer counts (``update_fine_summary``; ``coll``, the prediction collection, for a
    second that becomes busy). Done before the documents are inserted, so a crash in between
    leaves a day counted (a history walk then looks at it and finds fewer rows) rather than rows
    no walk finds; a replayed batch is counted again: the counts are estimates, and the page
    says so."""
    from pymongo import ReturnDocument

    total: Counter = Counter()
    days = summary_increments(docs)
    slots_before: dict[str, int] = {}
    for day, inc in sorted(days.items()):
        before = summary.find_one_and_update({"_id": day}, {"$inc": inc}, upsert=True,
                                             return_document=ReturnDocument.BEFORE) or {}
        slots_before.update({f"{day}T{k[:2]}:{k[2]}": n for k, n in before.get("slots", {}).items()})
        total.update({k: v for k, v in inc.items() if not k.startswith(("hours.", "slots."))})
    if days:
        summary.update_one({"_id": ALL_DAYS}, {"$inc": dict(total), "$min": {"first": min(days)},
                                               "$max": {"last": max(days)}}, upsert=True)
    update_fine_summary(summary, docs, coll, slots_before)


def slot_id(slot: str) -> str:
    return f"slot:{slot}"


def second_id(second: str) -> str:
    return f"sec:{second}"


def update_fine_summary(summary, docs: list[dict], coll=None, slots_before: dict[str, int] | None = None) -> None:
    """Per busy 10-minute slot touched (holding more than BUCKET_ROWS; ``slots_before``: each
    slot's count before ``docs``), one upsert of its summary (``slot:<slot>``: the total, per
    second ``s.<MSS>``, per value of each SUMMARY_DIMENSIONS), so that a burst's slot is walked
    second by second; per second holding more than BUCKET_ROWS, one upsert of its own
    (``sec:<second>``: per hundredth ``c.<cc>``), so that a second at 10,000/s is walked a
    hundredth at a time. A quiet slot gets none (the walk reads it whole): spread-out traffic
    costs no upsert per slot. A slot or second becoming busy with this chunk first counts what
    is stored of it (at most BUCKET_ROWS documents, one query)."""
    from pymongo import ReturnDocument

    slots_before = slots_before or {}
    by_slot: dict[str, list[dict]] = {}
    for doc in docs:
        if "requested_sec" in doc:
            by_slot.setdefault(doc["requested_slot"], []).append(doc)
    for slot, group in sorted(by_slot.items()):
        was_slot = slots_before.get(slot, 0)
        if was_slot + len(group) <= BUCKET_ROWS:
            continue
        if 0 < was_slot <= BUCKET_ROWS and coll is not None:  # busy from now on: count what is stored of it
            group = group + [d for d in coll.find({"requested_slot": slot}) if "requested_sec" in d]
        inc: Counter = Counter()
        by_second: dict[str, list[dict]] = {}
        for doc in group:
            inc["n"] += 1
            inc[f"s.{second_field(doc['requested_sec'])}"] += 1
            for dim in SUMMARY_DIMENSIONS:
                inc[f"{dim}.{doc.get(dim)}"] += 1
            by_second.setdefault(doc["requested_sec"], []).append(doc)
        before = summary.find_one_and_update({"_id": slot_id(slot)}, {"$inc": dict(inc)}, upsert=True,
                                             return_document=ReturnDocument.BEFORE) or {}
        for second, sdocs in sorted(by_second.items()):
            was = before.get("s", {}).get(second_field(second), 0)
            if was + len(sdocs) <= BUCKET_ROWS:
                continue
            hundredths = Counter(d["requested_cs"][-2:] for d in sdocs)
            if 0 < was <= BUCKET_ROWS and coll is not None:  # busy from now on: count what is stored of it
                hundredths.update(d["requested_cs"][-2:] for d in coll.find({"requested_sec": second},
                                                                            {"requested_cs": 1}) if "requested_cs" in d)
            summary.update_one({"_id": second_id(second)},
                               {"$inc": {"n": sum(hundredths.values()), **{f"c.{k}": v for k, v in hundredths.items()}}},
                               upsert=True)


class MongoWriter:
    """Insert-if-absent keyed by the request UUID (``_id``): ``insert_many(ordered=False)``
    and duplicate-key errors (a replayed prediction) are ignored, so a UUID has exactly one
    document, the first prediction stored for it.

    Why not ReplaceOne upserts: FerretDB 1.24 on SQLite runs every upsert as a query plus an
    update (far slower than inserts), and a command that replaces about 100 existing documents
    exhausts its connection pool and hangs the server for every client (docs/decisions.md,
    "Measured on earlier code")."""

    CHUNK = 1000

    def __init__(self, s: Settings):
        self.s = s
        self._client = None

    def collection(self):
        if self._client is None:
            self._client = client(self.s)
        return collection(self._client, self.s)

    def summary(self):
        self.collection()
        return summary_collection(self._client, self.s)

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
            chunk = docs[start:start + self.CHUNK]
            update_summary(self.summary(), chunk, self.collection())
            try:
                self.collection().insert_many(chunk, ordered=False)
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
def find_prediction(coll, uuid: str) -> dict | None:
    """The stored prediction of ``uuid`` (its response fields), or None."""
    doc = coll.find_one({"_id": uuid})
    return None if doc is None else response_fields(doc)


def find_by_uuids(coll, uuids) -> list[dict]:
    return list(coll.find({"_id": {"$in": list(uuids)}}))


def stored_uuids(coll) -> list[str]:
    """The UUID of every document (a full scan: for counting after a bench run)."""
    return [d["UUID"] for d in coll.find({}, {"UUID": 1, "_id": 0})]


# -- History at scale ---------------------------------------------------------------------------
# Newest-first pages over a million documents, with filters, from equality queries only: the
# only kind FerretDB pushes down to PostgreSQL (no range, no sort, no limit once a filter is set;
# on SQLite not even that). A page walks request days newest first; each day's summary
# document (one lookup by _id) says whether the day can hold a match and about how many, per
# hour and per 10-minute slot too. Each bucket is read with one equality query
# {requested_day | requested_hour | requested_slot, filters...}, choosing the coarsest bucket
# expected to hold at most BUCKET_ROWS matches: FerretDB decodes every row PostgreSQL returns,
# which is the main cost of a page. Rows are sorted in Python and cut at the keyset cursor
# (requested_at, UUID) of the previous page, so a deep page costs what the first does.
BUCKET_ROWS = 100
MAX_DAYS_WALKED = 400  # per page: a filter matching nothing stops after this many days
COUNT_DAYS_MAX = 62  # a date range up to this long is counted day by day, longer ones from ALL_DAYS


@dataclass
class HistoryQuery:
    filters: dict = field(default_factory=dict)  # exact values of HISTORY_FILTERS
    date_from: str | None = None  # request day range, inclusive (UTC, YYYY-MM-DD)
    date_to: str | None = None
    before: tuple[int, str] | None = None  # keyset: rows strictly older than (requested_at, UUID)
    page_size: int = 25


@dataclass
class HistoryPage:
    rows: list[dict]
    count: int  # an estimate: count_kind says which (about / at most), count_note from what
    count_kind: str
    count_note: str
    query: HistoryQuery
    next_before: tuple[int, str] | None  # cursor of the next (older) page, None on the last
    buckets_read: int = 0

    @property
    def filters(self) -> dict:
        return self.query.filters


def history_filters(raw: dict) -> dict:
    """The usable filters of ``raw``: known names, non-empty, ``prediction`` as an int class."""
    filters = {}
    for name in HISTORY_FILTERS:
        value = raw.get(name)
        if value is None or value == "":
            continue
        if name == "prediction":
            try:
                value = int(value)
            except (TypeError, ValueError):
                continue
        filters[name] = value
    return filters


def candidates(summary_doc: dict | None, filters: dict, hour: str | None = None) -> int:
    """An upper bound of the documents of a summarised day (or one of its hours) matching
    ``filters``: the smallest count among the summarised filter values."""
    if not summary_doc:
        return 0
    bound = summary_doc.get("n", 0) if hour is None else summary_doc.get("hours", {}).get(hour, 0)
    for dim in SUMMARY_DIMENSIONS:
        if dim in filters:
            bound = min(bound, summary_doc.get(dim, {}).get(str(filters[dim]), 0))
    return bound


def buckets(day: str, day_doc: dict, filters: dict, cursor: dict | None, lookup=lambda _id: None):
    """The equality buckets to read of one day, newest first, as ``(field, value)``: the whole
    day, its hours, its 10-minute slots, a busy slot's seconds, a busy second's hundredths,
    whichever is expected to hold at most BUCKET_ROWS matches (the match rate of the day, then
    of the slot, applied to each part's count). Buckets newer than ``cursor`` (the bucket keys
    of the previous page's last row) are skipped; ``lookup(_id)`` reads a summary document."""
    bound, n = candidates(day_doc, filters), day_doc.get("n", 0)
    if bound == 0 or n == 0 or (cursor is not None and cursor["requested_day"] < day):
        return
    if bound <= BUCKET_ROWS:
        yield "requested_day", day
        return
    rate = bound / n
    slots = day_doc.get("slots", {})
    for hour, count in sorted(day_doc.get("hours", {}).items(), reverse=True):
        hour_key = f"{day}T{hour}"
        if count == 0 or (cursor is not None and hour_key > cursor["requested_hour"]):
            continue
        hour_slots = sorted(((s, c) for s, c in slots.items() if s[:2] == hour and c), reverse=True)
        if count * rate <= BUCKET_ROWS or not hour_slots:
            yield "requested_hour", hour_key
            continue
        for slot, slot_count in hour_slots:
            slot_key = f"{hour_key}:{slot[2]}"
            if cursor is not None and slot_key > cursor["requested_slot"]:
                continue
            if slot_count * rate <= BUCKET_ROWS:
                yield "requested_slot", slot_key
            else:
                yield from slot_buckets(slot_key, filters, cursor, lookup, slot_count)


def slot_buckets(slot: str, filters: dict, cursor: dict | None, lookup, slot_count: int = 0):
    """A busy slot's buckets, newest first: the whole slot if its own summary says it holds few
    matches, or if it has none or counts fewer than the day does (``slot_count``: written before
    these summaries, or a crash between the two upserts), else each second, or each hundredth
    of a busy second."""
    slot_doc = lookup(slot_id(slot))
    if not slot_doc or slot_doc.get("n", 0) < slot_count:
        yield "requested_slot", slot
        return
    bound = candidates(slot_doc, filters)
    if bound == 0:
        return
    if bound <= BUCKET_ROWS:
        yield "requested_slot", slot
        return
    rate = bound / slot_doc["n"]
    for field_name, count in sorted(slot_doc.get("s", {}).items(), reverse=True):
        second = second_of(slot, field_name)
        if count == 0 or (cursor is not None and second > cursor["requested_sec"]):
            continue
        second_doc = None if count * rate <= BUCKET_ROWS else lookup(second_id(second))
        hundredths = (second_doc or {}).get("c", {})
        if not second_doc or sum(hundredths.values()) < count:  # few matches, or not all counted: whole second
            yield "requested_sec", second
            continue
        for cc, _ in sorted(hundredths.items(), reverse=True):
            key = f"{second}.{cc}"
            if cursor is None or key <= cursor["requested_cs"]:
                yield "requested_cs", key


def bucket_keys(requested_at_ms: int) -> dict:
    """The bucket keys of a request time (as ``document`` stores them)."""
    cs = request_centisecond(requested_at_ms)
    return {"requested_day": cs[:10], "requested_hour": cs[:13], "requested_slot": cs[:15],
            "requested_sec": cs[:19], "requested_cs": cs}


def days_back(newest: str, oldest: str):
    day, stop = date.fromisoformat(newest), date.fromisoformat(oldest)
    while day >= stop:
        yield day.isoformat()
        day -= timedelta(days=1)


def older_than(before: tuple[int, str] | None):
    if before is None:
        return lambda doc: True
    at, uuid = before
    return lambda doc: (doc["requested_at"], doc["UUID"]) < (at, uuid)


def newest_first(docs) -> list[dict]:
    return sorted(docs, key=lambda d: (d["requested_at"], d["UUID"]), reverse=True)


def history(coll, summary, query: HistoryQuery) -> HistoryPage:
    """One page of predictions matching ``query``, newest request first (see above)."""
    everything = summary.find_one({"_id": ALL_DAYS})
    if not everything:
        return HistoryPage([], 0, "exactly", "nothing stored yet", query, None)
    newest = min(filter(None, (everything["last"], query.date_to)))
    cursor = bucket_keys(query.before[0]) if query.before is not None else None
    if cursor is not None:
        newest = min(newest, cursor["requested_day"])
    oldest = max(filter(None, (everything["first"], query.date_from)))
    keep = older_than(query.before)
    rows: list[dict] = []
    read = walked = 0
    day_docs: dict[str, dict | None] = {}
    for day in days_back(newest, oldest):
        walked += 1
        if walked > MAX_DAYS_WALKED:
            break
        day_doc = day_docs[day] = summary.find_one({"_id": day})
        for key, value in buckets(day, day_doc or {}, query.filters, cursor,
                                  lambda _id: summary.find_one({"_id": _id})):
            read += 1
            found = newest_first(d for d in coll.find({key: value, **query.filters}) if keep(d))
            rows.extend(found[:query.page_size - len(rows)])
            if len(rows) >= query.page_size:
                break
        if len(rows) >= query.page_size:
            break
    more = len(rows) >= query.page_size and walked <= MAX_DAYS_WALKED
    next_before = (rows[-1]["requested_at"], rows[-1]["UUID"]) if more else None
    if len(rows) < query.page_size and walked > MAX_DAYS_WALKED:  # stopped early: offer to go on
        next_before = (date_start_ms(day) + 86_400_000, "")  # the next page starts with that day
    count, kind, note = estimate_count(summary, everything, query, day_docs)
    return HistoryPage([response_fields(r) for r in rows], count, kind, note, query, next_before, read)


def date_start_ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp() * 1000)


def estimate_count(summary, everything: dict, query: HistoryQuery, seen: dict) -> tuple[int, str, str]:
    """How many predictions match, from the summary documents (never a count over the
    predictions): exact for one summarised filter or none, an upper bound for combined
    filters or a FlightDate/model filter (not summarised)."""
    exact = (sum(1 for f in query.filters if f in SUMMARY_DIMENSIONS) <= 1
             and not set(query.filters) - set(SUMMARY_DIMENSIONS))
    kind = "about" if exact else "at most"
    if not query.date_from and not query.date_to:
        return candidates(everything, query.filters), kind, "counted from the daily summary"
    first, last = query.date_from or everything["first"], query.date_to or everything["last"]
    days = list(days_back(last, first)) if first <= last else []
    if len(days) > COUNT_DAYS_MAX:
        return (candidates(everything, query.filters), "at most",
                f"counted over all days: ranges over {COUNT_DAYS_MAX} days are not counted day by day")
    total = 0
    for day in days:
        doc = seen[day] if day in seen else summary.find_one({"_id": day})
        total += candidates(doc, query.filters)
    return total, kind, "counted from the daily summary"
