"""One module per store of the platform: its schema or indexes, row conversion, writer and read queries."""


class Refused(Exception):
    """A store refused some rows for good (retrying cannot help) and wrote the others.
    ``reasons`` maps the index of each refused row, in the list given to ``write``, to why;
    ``written`` counts the rows stored."""

    def __init__(self, written: int, reasons: dict[int, str]):
        super().__init__(f"{len(reasons)} row(s) refused, {written} written")
        self.written = written
        self.reasons = reasons
