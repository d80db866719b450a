"""Retraining on observed outcomes (training/observed.py): which scored predictions become
training rows, which flight dates are held out, how they join the base flights, and that their
label is the training label (the same Bucketizer)."""
import pandas as pd
import pytest

from flightdelay.schema import LABEL_COLUMN, flight_key, label_for_delay
from training import observed


def scored(uuid, date, number, arr_delay, *, status="scored", requested_at=1, crs_arr=830, request_dep=5.0,
           carrier="UA", origin="EWR", dest="IAH", crs_dep=529):
    flight = {"Carrier": carrier, "FlightNum": number, "Origin": origin, "Dest": dest, "FlightDate": date,
              "CRSDepTime": crs_dep}
    return {"UUID": uuid, **flight, "flight_key": flight_key(flight), "status": status, "ArrDelay": arr_delay,
            "requested_at": requested_at, "CRSArrTime": crs_arr, "RequestDepDelay": request_dep}


def joined(*rows):
    return pd.DataFrame(list(rows))


def test_only_scored_flights_with_a_request_become_rows_once_each_with_the_newest_request():
    flights, counts = observed.observed_flights(joined(
        scored("a", "2013-11-02", 1, 12.0, requested_at=10, request_dep=3.0),
        scored("b", "2013-11-02", 1, 12.0, requested_at=20, request_dep=4.0),   # the same flight asked again
        scored("c", "2013-11-02", 2, None, status="cancelled"),
        scored("d", "2013-11-03", 3, None, status="diverted"),
        scored("e", "2013-11-03", 4, -20.0, crs_arr=None, request_dep=None),    # its request not archived
        scored("f", "2013-11-01", 5, 45.0, crs_arr=2359),
    ))
    assert counts == {"scored_predictions": 6, "without_class": 2, "without_request": 1, "repeated_flight": 1,
                      "flights": 2}
    assert list(flights.columns) == list(observed.FLIGHT_COLUMNS)
    assert flights[["FlightDate", "FlightNum", "CRSArrTime", "DepDelay", "ArrDelay"]].to_dict("records") == [
        {"FlightDate": "2013-11-01", "FlightNum": 5, "CRSArrTime": 2359, "DepDelay": 5.0, "ArrDelay": 45.0},
        {"FlightDate": "2013-11-02", "FlightNum": 1, "CRSArrTime": 830, "DepDelay": 4.0, "ArrDelay": 12.0},
    ]
    assert flights["DepTime"].isna().all() and flights["ArrTime"].isna().all()


@pytest.mark.parametrize("dates, fraction, first", [
    (["2013-11-01"] * 5 + ["2013-11-02"] * 3 + ["2013-11-03"] * 2, 0.2, "2013-11-03"),   # 2 of 10: one date
    (["2013-11-01"] * 5 + ["2013-11-02"] * 3 + ["2013-11-03"] * 2, 0.25, "2013-11-02"),  # 3 needed: two dates
    (["2013-11-01"] * 5 + ["2013-11-02"] * 3 + ["2013-11-03"] * 2, 0.0, "2013-11-03"),   # at least one date
    (["2013-11-03", "2013-11-01", "2013-11-02"], 0.5, "2013-11-02"),                    # order does not matter
    (["2013-11-01"] * 4, 0.2, "2013-11-01"),                                              # one date: all of it
])
def test_the_newest_whole_flight_dates_are_held_out(dates, fraction, first):
    assert observed.holdout_start(dates, fraction) == first


def test_nothing_observed_is_an_error_not_an_empty_holdout():
    with pytest.raises(observed.ObservedError):
        observed.holdout_start([], 0.2)


def test_base_flights_never_reach_the_held_out_days():
    assert observed.base_cut("2013-11-01", "2013-11-05") == "2013-11-01"   # the champion's training data
    assert observed.base_cut("2013-12-01", "2013-11-05") == "2013-11-05"   # never a held-out day


def base_row(date, number, arr_delay, dep_time=600, arr_time=900):
    return {"Carrier": "UA", "Origin": "EWR", "Dest": "IAH", "FlightDate": date, "CRSDepTime": 529,
            "CRSArrTime": 830, "DepDelay": 1.0, "FlightNum": number, "DepTime": dep_time, "ArrTime": arr_time,
            "ArrDelay": arr_delay}


def test_the_split_joins_observed_flights_to_the_base_and_labels_them_like_training(spark):
    from training import data, evaluate

    base = spark.createDataFrame(pd.DataFrame([
        base_row("2013-10-30", 1, -30.0), base_row("2013-10-31", 2, -5.0),
        base_row("2013-11-02", 7, 10.0),      # the same flight as observed below: taken once, as observed
        base_row("2013-10-31", 8, 1.0),
    ]).astype({"CRSDepTime": "int32", "CRSArrTime": "int32", "FlightNum": "int32", "DepTime": "int32",
               "ArrTime": "int32"}), schema=data.FLIGHTS_DDL)
    flights, counts = observed.observed_flights(joined(
        scored("a", "2013-11-02", 7, 50.0), scored("b", "2013-11-03", 9, -15.0), scored("c", "2013-11-04", 3, 0.0),
        scored("d", "2013-11-04", 4, 29.9)))
    parts = observed.split(spark, base, observed.Observed(flights, counts, "test"), "2013-12-01", 0.5)

    assert parts["counts"]["first_holdout_date"] == "2013-11-04" and parts["counts"]["base_cut"] == "2013-11-04"
    assert (parts["counts"]["train_flights"], parts["counts"]["holdout_flights"]) == (2, 2)
    train = {(r["FlightDate"], r["FlightNum"]): r for r in evaluate.labelled(parts["train"]).collect()}
    assert sorted(train) == [("2013-10-30", 1), ("2013-10-31", 2), ("2013-10-31", 8), ("2013-11-02", 7),
                             ("2013-11-03", 9)]
    assert train[("2013-11-02", 7)]["ArrDelay"] == 50.0 and train[("2013-11-02", 7)]["DepTime"] is None
    holdout = evaluate.labelled(parts["holdout"]).collect()
    assert sorted(r["FlightNum"] for r in holdout) == [3, 4]
    for row in [*train.values(), *holdout]:
        assert row[LABEL_COLUMN] == label_for_delay(row["ArrDelay"])   # the one label definition
    assert {r["FlightDate"] for r in parts["base_train"].collect()} == {"2013-10-30", "2013-10-31", "2013-11-02"}

    # With the champion's split date before the observed days, later base flights stay out.
    tight = observed.split(spark, base, observed.Observed(flights, counts, "test"), "2013-10-31", 0.5)
    assert sorted(r["FlightNum"] for r in tight["train"].collect()) == [1, 7, 9]
