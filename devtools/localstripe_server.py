"""Run localstripe bound to 127.0.0.1, with its state file where we choose (or none).

Its own command line listens on every interface and writes a fixed /tmp file that two
instances would share; this wrapper fixes both.
"""

import argparse
import logging
import pickle

from aiohttp import web
from localstripe import resources
from localstripe.server import app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--state", default="", help="pickle file to persist to ('' = memory only)")
    args = parser.parse_args()

    store = resources.store
    if args.state:
        state_path = args.state

        def dump_to_disk() -> None:
            with open(state_path, "wb") as f:
                pickle.dump(dict(store), f, protocol=pickle.HIGHEST_PROTOCOL)

        try:
            with open(state_path, "rb") as f:
                store.update(pickle.load(f))
        except (FileNotFoundError, EOFError, pickle.UnpicklingError):
            pass
        store.dump_to_disk = dump_to_disk  # type: ignore[method-assign]
    else:
        store.dump_to_disk = lambda: None  # type: ignore[method-assign]
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
