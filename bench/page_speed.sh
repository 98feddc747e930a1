#!/usr/bin/env bash
# Server time per buyer page (best of 9 after warm-up) against the 30 ms target, plus query
# counts. Run on a quiet machine; figures land in artifacts/page-speed.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PAGE_SPEED_BUDGET_MS="${PAGE_SPEED_BUDGET_MS:-30}" exec bin/test tests/browser/test_page_speed.py "$@"
