"""Usage: python -m monitor   (settings: FD_MONITOR_* in python -m flightdelay.config)"""
import sys

from monitor.service import main

sys.exit(main())
