"""Production settings, checked the way production starts them: a fresh process whose
environment says DEBUG=false. Settings are read once at import, so these tests cannot run
in the test process itself."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "example.com",
}


def manage(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_check_deploy_reports_no_issue_with_production_settings():
    completed = manage("check", "--deploy", "--fail-level", "DEBUG", **PRODUCTION)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "System check identified no issues (0 silenced)." in completed.stdout


def test_production_refuses_to_start_without_a_secret_key():
    completed = manage("check", **{**PRODUCTION, "SECRET_KEY": ""})

    assert completed.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off." in completed.stderr


def test_production_refuses_the_development_secret_key():
    development_key = "django-insecure-development-key-do-not-use-in-production"

    completed = manage("check", **{**PRODUCTION, "SECRET_KEY": development_key})

    assert completed.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off." in completed.stderr


SERVE_ADMIN_STATIC = """
from django.test import Client

client = Client(HTTP_HOST="example.com")
login = client.get("/admin/login/", secure=True)
assert login.status_code == 200, login.status_code
page = login.content.decode()
start = page.index("/static/admin/css/base.")
stylesheet = page[start : page.index('"', start)]
assert stylesheet != "/static/admin/css/base.css", "not a content-hashed name"
served = client.get(stylesheet, secure=True, HTTP_ACCEPT_ENCODING="gzip")
assert served.status_code == 200, served.status_code
assert served["Content-Type"].startswith("text/css"), served["Content-Type"]
assert served["Content-Encoding"] == "gzip", served.headers
assert "immutable" in served["Cache-Control"], served["Cache-Control"]
insecure = client.get("/admin/login/")
assert insecure.status_code == 301 and insecure["Location"].startswith("https://"), insecure
print("served", stylesheet)
"""


def test_production_serves_the_admins_static_files_after_collectstatic(tmp_path):
    environment = {
        **PRODUCTION,
        "STATIC_ROOT": str(tmp_path / "static"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    collected = manage("collectstatic", "--noinput", **environment)
    assert collected.returncode == 0, collected.stdout + collected.stderr

    served = manage("shell", "--no-imports", "-c", SERVE_ADMIN_STATIC, **environment)

    assert served.returncode == 0, served.stdout + served.stderr
    assert "served /static/admin/css/base." in served.stdout


SHOW_LIMITS = """
from django.conf import settings as s
print(s.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME, s.CACHES["default"]["BACKEND"])
"""


def test_throttle_rates_lockout_and_cache_come_from_the_environment(tmp_path):
    completed = manage(
        "shell",
        "--no-imports",
        "-c",
        SHOW_LIMITS,
        API_THROTTLE_USER="100/s",
        API_THROTTLE_ANON="off",
        API_THROTTLE_AUTH_FAILURE="3/min",
        ADMIN_LOGIN_FAILURE_LIMIT="7",
        ADMIN_LOCKOUT_MINUTES="2",
        CACHE_URL=f"filecache://{tmp_path}",
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == [
        "{'user': '100/s', 'anon': None, 'auth_failure': '3/min'}",
        "7 0:02:00 django.core.cache.backends.filebased.FileBasedCache",
    ]
