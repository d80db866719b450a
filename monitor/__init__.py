"""The drift monitor (``python -m monitor``): off the user's path, it reads the predictions on the
response topic in windows, scores each model version's share of a window against that version's
training reference (``flightdelay.drift``) and its live accuracy against its holdout accuracy,
and publishes each window's scores on FD_MONITOR_TOPIC and stores them in Cassandra
(``flightdelay.stores.monitor``). Its decider (``monitor.decider``) pairs the shadow model's
predictions with the champion's scored ones and promotes, refuses or rolls back by the rule of
``flightdelay.promotion``."""
