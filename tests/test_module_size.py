"""No product module over 600 lines (issue 21): a module that grows past it is split by what
its parts do (see storefront/services/upsell/ or analytics/selectors/ for the pattern)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 600


def product_modules() -> list[Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = config["tool"]["importlinter"]["root_packages"] + ["config"]
    return sorted(
        path
        for package in packages
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def test_every_app_is_checked():
    names = {path.relative_to(ROOT).parts[0] for path in product_modules()}
    assert {"storefront", "offers", "payments", "analytics", "core", "config"} <= names


def test_no_product_module_is_over_600_lines():
    long = {
        str(path.relative_to(ROOT)): count
        for path in product_modules()
        if (count := len(path.read_text().splitlines())) > LIMIT
    }
    assert long == {}, f"split these modules (limit {LIMIT} lines): {long}"
