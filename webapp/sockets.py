"""The process's Socket.IO server (Flask-SocketIO), bound to the app by ``create_app``. A module
of its own, importing nothing of the web app: the app factory and the prediction flow both use
it, and neither has to import the other."""
from __future__ import annotations

from flask_socketio import SocketIO

socketio = SocketIO()
