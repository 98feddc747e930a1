"""Run localstripe bound to 127.0.0.1, with its state file where we choose (or none).

Its own command line listens on every interface and writes a fixed /tmp file that two
instances would share; this wrapper fixes both, and adds the Stripe Connect subset the platform
calls (devtools/localstripe_connect.py, docs/localstripe-connect.md), card disputes
(devtools/localstripe_disputes.py) and Stripe's handling of saved cards
(devtools/localstripe_cards.py).
"""

import argparse
import logging
import pickle

from aiohttp import web
from localstripe import resources
from localstripe.server import app

from devtools.localstripe_cards import install as install_cards
from devtools.localstripe_connect import install as install_connect
from devtools.localstripe_disputes import install as install_disputes


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
    install_cards(app)  # saved cards as Stripe keeps them (devtools/localstripe_cards.py)
    install_connect(app)  # the Connect subset localstripe lacks (devtools/localstripe_connect.py)
    install_disputes(app)  # card disputes, which it lacks too (devtools/localstripe_disputes.py)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
