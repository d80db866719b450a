"""The drift monitor (``python -m monitor``): off the user's path, it reads the predictions on the
response topic in windows, scores each model version's share of a window against that version's
training reference (``flightdelay.drift``) and its live accuracy against its holdout accuracy,
and publishes each window's scores on FD_MONITOR_TOPIC and stores them in Cassandra
(``flightdelay.stores.monitor``)."""
