"""Production settings: `check --deploy` is clean; weak or missing secrets stop the process."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def production_env(**overrides: str | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": ".creators.example,creators.example",
        "DATABASE_URL": "postgres://app:pw@db.internal:5432/storefront",
        "REDIS_URL": "redis://redis.internal:6379/0",
        "STRIPE_SECRET_KEY": "sk_live_" + "x" * 24,
        "STRIPE_PUBLISHABLE_KEY": "pk_live_" + "x" * 24,
        "STRIPE_WEBHOOK_SECRET": "whsec_" + "x" * 24,
        "EMAIL_URL": "smtp+tls://mailer:pw@smtp.example:587",
    }
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def manage(*args: str, **overrides: str | None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=production_env(**overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy_with_no_warnings():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_does_fail_on_a_weakened_production_setting():
    # Proof the test above can fail: with HSTS switched off the same command reports W004.
    result = manage("check", "--deploy", "--fail-level", "WARNING", SECURE_HSTS_SECONDS="0")
    assert result.returncode != 0
    assert "security.W004" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "secret_key",
    [
        None,  # missing
        "",
        "dev-only-insecure-key-change-me",  # base.py's development default
        "test-only-secret-key-not-for-production-use-0123456789",  # the test settings' key
        "django-insecure-" + "a1b2c3d4e5" * 5,
        "too-short-but-random-7f3a",
        "a" * 64,  # long, but not random
    ],
    ids=["missing", "empty", "dev-default", "test-key", "django-insecure", "short", "one-char"],
)
def test_production_refuses_to_start_with_a_missing_or_default_secret_key(secret_key):
    result = manage("check", SECRET_KEY=secret_key)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY" in result.stderr


@pytest.mark.parametrize(
    "name",
    [
        "DATABASE_URL",
        "REDIS_URL",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "EMAIL_URL",
        "ALLOWED_HOSTS",
    ],
)
def test_production_refuses_to_start_without_each_credential(name):
    result = manage("check", **{name: None})
    assert result.returncode != 0
    assert name in result.stderr


def test_production_takes_the_database_credentials_from_the_environment():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import django; django.setup(); from django.conf import settings as s; "
                "d = s.DATABASES['default']; "
                "print(d['HOST'], d['USER'], d['NAME'], d['ATOMIC_REQUESTS'])"
            ),
        ],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["db.internal", "app", "storefront", "False"]


def test_every_dependency_in_the_lock_file_is_pinned_to_one_version():
    lines = [
        line.split("#")[0].strip() for line in (ROOT / "requirements.lock").read_text().splitlines()
    ]
    requirements = [line for line in lines if line]
    assert requirements
    unpinned = [
        r for r in requirements if not re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-]+", r)
    ]
    assert unpinned == []
