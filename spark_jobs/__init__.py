"""The streaming prediction job (entry point: spark_jobs.predict_stream)."""
