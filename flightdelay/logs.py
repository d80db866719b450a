"""Logging set-up shared by the platform's processes: one line per event, one format."""
from __future__ import annotations

import atexit
import logging
import queue
from logging.handlers import QueueHandler, QueueListener

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=FORMAT)


def write_from_one_thread() -> QueueListener:
    """Put the root logger's handlers behind a queue written by one thread.

    In a process with many request threads (the web app: one per open websocket and per
    Socket.IO event) every thread otherwise takes turns on the stream handler's lock for each
    line; under load the Kafka response consumer queued there behind the request threads
    (bench.webapp, 50 browsers: result delivery p50 230-300 ms). Call it in the process that
    serves, after any fork: the writer is a thread.
    """
    root = logging.getLogger()
    handlers = list(root.handlers)
    lines: queue.SimpleQueue = queue.SimpleQueue()
    for handler in handlers:
        root.removeHandler(handler)
    root.addHandler(QueueHandler(lines))
    listener = QueueListener(lines, *handlers, respect_handler_level=True)
    listener.start()
    atexit.register(listener.stop)  # the last lines are written before the process ends
    return listener
