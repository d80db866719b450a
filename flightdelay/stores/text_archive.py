"""NiFi's plain-text prediction archive: ``predictions-YYYYMMDD-HHmmss.txt`` files (UTC time at
which NiFi cut the file), one prediction JSON per line, a new file every 10 seconds while
predictions flow. Written by the flow in ``nifi/`` into ``Settings.nifi_archive``; read here for
the web app and the tests.

PutFile writes ``.<name>`` and renames it, so a listed file is always complete.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

FILE_NAME = re.compile(r"^predictions-(\d{8}-\d{6})\.txt$")


@dataclass(frozen=True)
class ArchiveFile:
    path: Path
    cut_at: datetime  # from the name: when NiFi closed the 10-second bin (UTC)
    size: int

    @property
    def name(self) -> str:
        return self.path.name

    def line_count(self) -> int:
        return count_lines(self.path)


def cut_time(name: str) -> datetime | None:
    match = FILE_NAME.match(name)
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:  # matches the pattern but is no real date, e.g. month 13
        return None


def archive_files(directory: Path) -> list[ArchiveFile]:
    """Every archive file in ``directory``, oldest first; a missing directory has none."""
    files = []
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        when = cut_time(entry.name)
        if when is None:
            continue
        try:
            size = entry.stat().st_size
        except FileNotFoundError:  # removed between listing and stat
            continue
        files.append(ArchiveFile(entry, when, size))
    return sorted(files, key=lambda f: (f.cut_at, f.name))


def newest_files(directory: Path, limit: int = 20) -> list[dict]:
    """The ``limit`` newest files, newest first, with their line counts (for the archive page)."""
    newest = archive_files(directory)[-limit:][::-1]
    return [{"name": f.name, "cut_at": f.cut_at, "size": f.size, "lines": f.line_count()} for f in newest]


def summary(directory: Path, limit: int = 20) -> dict:
    files = archive_files(directory)
    return {"directory": str(directory), "files": len(files), "bytes": sum(f.size for f in files),
            "newest": newest_files(directory, limit)}


def count_lines(path: Path) -> int:
    """Lines in ``path``; a last line without its newline counts too."""
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def read_predictions(path: Path) -> Iterator[dict]:
    """Each line of an archive file as a dict; a line that is not a JSON object is logged and
    yielded as ``{"_invalid": line}`` so that a caller counts it rather than losing it."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                log.warning("%s line %d is not a JSON object: %.80s", path.name, number, line)
                record = {"_invalid": line}
            yield record
