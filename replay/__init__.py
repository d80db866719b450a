"""The replay: real 2013 flights played through the running platform as they happened
(``python -m replay --help``; usage in ``replay/__main__.py``)."""
