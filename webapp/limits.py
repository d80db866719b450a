"""Rate limiting for the API (per client address, in-process memory storage)."""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address)
