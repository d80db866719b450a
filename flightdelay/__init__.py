"""Shared package of the flight-delay platform: schema, features, config, Kafka clients, stores, job status.

Imported by the web app, the streaming job, training and the launcher; imports none of them.
"""
