"""A production configuration (DEBUG off) ships closed: HSTS, Secure and HTTP-only cookies,
proxy headers only when configured, `check --deploy` clean with the README's settings, and no
start with an unpinned scan image; compose publishes the web port on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# An example audit key (a production key is made with `head -c 48 /dev/urandom | base64`).
EXAMPLE_KEY = Path(tempfile.mkdtemp(prefix="wavegate-check-")) / "audit.key"
EXAMPLE_KEY.write_text("example-audit-key-" + "0" * 48 + "\n")

# The production settings README.md documents, with example values (as `make check-deploy`).
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "check-deploy-example-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "DJANGO_ALLOWED_HOSTS": "wavegate.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://wavegate.example.com",
    "WAVEGATE_TRUSTED_PROXIES": "10.0.0.2",
    "AZURE_ARM_ENDPOINT": "https://management.azure.com",
    "WAVEGATE_SCAN_IMAGE_DIGEST": "sha256:" + "0" * 64,
    "WAVEGATE_AUDIT_HMAC_KEY_FILE": str(EXAMPLE_KEY),
    "WAVEGATE_AUDIT_CHECKPOINT_FILE": "/var/lib/wavegate-audit/checkpoints.jsonl",
}
SHOWN = [
    "SECURE_HSTS_SECONDS",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "CSRF_COOKIE_HTTPONLY",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_SSL_REDIRECT",
    "SESSION_EXPIRE_AT_BROWSER_CLOSE",
]


def environment(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WAVEGATE_"))}
    env.pop("AZURE_ARM_ENDPOINT", None)
    return {**env, **PRODUCTION, **overrides}


def manage(*args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment(**overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_settings(**overrides: str) -> dict:
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{k: getattr(settings, k, None) for k in {SHOWN!r}}}))"
    )
    done = manage("shell", "-c", code, **overrides)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_it_turns_on_hsts_and_secure_http_only_cookies_with_debug_off():
    shown = production_settings()

    assert shown["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert shown["SESSION_COOKIE_SECURE"]
    assert shown["CSRF_COOKIE_SECURE"]
    assert shown["SESSION_COOKIE_HTTPONLY"]
    assert shown["CSRF_COOKIE_HTTPONLY"]
    assert shown["SESSION_EXPIRE_AT_BROWSER_CLOSE"]


def test_it_trusts_a_proxy_header_only_when_proxies_are_configured():
    assert production_settings(WAVEGATE_TRUSTED_PROXIES="")["SECURE_PROXY_SSL_HEADER"] is None
    behind_proxy = production_settings()
    assert behind_proxy["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert behind_proxy["SECURE_SSL_REDIRECT"]


def test_the_deploy_check_passes_with_the_documented_production_settings():
    done = manage("check", "--deploy", "--fail-level", "WARNING")

    assert done.returncode == 0, done.stderr
    readme = (ROOT / "README.md").read_text()
    for name in PRODUCTION:
        assert f"`{name}`" in readme


def test_a_production_start_refuses_an_empty_scan_image_digest():
    done = manage("check", "--deploy", "--fail-level", "ERROR", WAVEGATE_SCAN_IMAGE_DIGEST="")

    assert done.returncode != 0
    assert "WAVEGATE_SCAN_IMAGE_DIGEST is empty" in done.stderr


def test_a_production_start_refuses_an_audit_log_without_anchors(tmp_path):
    missing = manage("check", "--deploy", "--fail-level", "ERROR", WAVEGATE_AUDIT_HMAC_KEY_FILE="")
    short_key = tmp_path / "short.key"
    short_key.write_text("too-short")
    short = manage(
        "check", "--deploy", "--fail-level", "ERROR", WAVEGATE_AUDIT_HMAC_KEY_FILE=str(short_key)
    )
    no_file = manage(
        "check", "--deploy", "--fail-level", "ERROR", WAVEGATE_AUDIT_CHECKPOINT_FILE=""
    )

    assert missing.returncode != 0
    assert "WAVEGATE_AUDIT_HMAC_KEY_FILE is not set" in missing.stderr
    assert short.returncode != 0
    assert "at least 32 are needed" in short.stderr
    assert no_file.returncode != 0
    assert "WAVEGATE_AUDIT_CHECKPOINT_FILE is empty" in no_file.stderr


def test_the_simulator_and_the_demo_still_start_without_a_digest():
    done = manage(
        "check",
        "--deploy",
        "--fail-level",
        "ERROR",
        WAVEGATE_SCAN_IMAGE_DIGEST="",
        AZURE_ARM_ENDPOINT="https://127.0.0.1:8443",
    )

    assert done.returncode == 0, done.stderr


def test_compose_publishes_the_web_port_on_localhost_and_checks_before_starting():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

    assert compose["services"]["web"]["ports"] == ["${WAVEGATE_BIND:-127.0.0.1}:8000:8000"]
    assert "check --deploy" in " ".join(compose["services"]["migrate"]["command"])


def test_make_test_runs_the_deploy_check():
    makefile = (ROOT / "Makefile").read_text()

    assert re.search(r"^test:.*\bcheck-deploy\b", makefile, re.M)
    assert re.search(r"^check-deploy:", makefile, re.M)
