"""The test and bench harness: what tests and benchmarks share to drive the real platform and
account for what it did (job process, traffic, ledger, waiting with a deadline, percentiles,
machine and process figures, recorded results). Never imported by the product."""
