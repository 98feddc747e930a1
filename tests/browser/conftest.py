"""Browser tests: fixtures come from tests/browser_support.py via tests/conftest.py."""

from tests.browser_support import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, fill_card

__all__ = ["ARTIFACTS", "CHROMIUM", "LAUNCH_ARGS", "fill_card"]
