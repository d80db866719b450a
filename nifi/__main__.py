"""The NiFi prediction archive's flow, for the current Settings.

Usage:
    python -m nifi render     print the flow as NiFi's flow.json.gz content (what `make up` deploys)
    python -m nifi check      compare the running NiFi's flow with nifi/flow.json; exit 1 if they differ
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from flightdelay.config import load_settings
from nifi import deploy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nifi", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["render", "check"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    s = load_settings()
    if args.action == "render":
        json.dump(deploy.render_dataflow(s), sys.stdout, indent=2)
        print()
        return 0
    try:
        diffs = deploy.differences(s)
    except OSError as exc:
        print(f"NiFi is not answering on port {s.nifi_port}: {exc} (make up? make status)", file=sys.stderr)
        return 1
    for line in diffs:
        print(line)
    print("the running flow is nifi/flow.json" if not diffs else f"{len(diffs)} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
