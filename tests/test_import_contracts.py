"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and they catch a break.

The second test copies the apps into a temporary directory, adds one forbidden import there and
runs the same linter on the copy: the contract that forbids it must come back broken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {contract["id"]: contract["name"] for contract in CONFIG["contracts"]}

LINT = (
    "import sys\n"
    "from importlinter.cli import lint_imports\n"
    "sys.exit(lint_imports(no_cache=True, no_logo=True))\n"
)


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-c", LINT], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


def test_every_import_contract_is_kept():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CONTRACTS.values():
        assert f"{name} KEPT" in result.stdout


# (module written into the copy, its import, the contract that must break)
PROBES = [
    ("payments/_probe.py", "import storefront.models", "payments-below-orders"),
    ("payments/_probe.py", "from offers import selectors", "payments-below-orders"),
    ("analytics/_probe.py", "import offers.models", "product-layers"),
    ("offers/_probe.py", "import stripe", "stripe-adapter"),
    ("core/_probe.py", "import tenants.models", "core-imports-no-app"),
    ("core/_probe.py", "from payments.gateway import get_gateway", "core-imports-no-app"),
    ("tenants/_probe.py", "from storefront import models", "no-app-cycles"),
    ("audit/_probe.py", "import partners.models", "no-app-cycles"),
    ("payments/_probe.py", "import subscriptions.models", "payments-below-orders"),
    ("subscriptions/_probe.py", "from storefront import models", "product-layers"),
    ("offers/_probe.py", "import subscriptions.services", "no-app-cycles"),
]


@pytest.mark.parametrize(("path", "statement", "contract"), PROBES)
def test_a_forbidden_import_breaks_its_contract(tmp_path, path, statement, contract):
    for package in CONFIG["root_packages"]:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    probe = tmp_path / path
    probe.write_text(f"{statement}\n")
    module = path.removesuffix(".py").replace("/", ".")

    result = _lint(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{CONTRACTS[contract]} BROKEN" in result.stdout
    assert f"{module} ->" in result.stdout  # broken by the probe, not by something else
