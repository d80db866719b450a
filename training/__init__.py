"""Training of the flight-delay model: data -> features -> fit -> evaluate -> MLflow / models/.

Entry point: ``python -m training.train --help``.
"""
