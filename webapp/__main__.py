# The server runs on gevent: patch the standard library (sockets, threads, time, queues)
# before anything else imports it (webapp/server.py says why gevent).
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from webapp import main  # noqa: E402

sys.exit(main())
