"""Shared fixtures: personas (one user per role), databases of a test's own, real processes.

Transactional work (several connections, other processes) never runs in pytest-django's
`transactional_db`: that fixture empties tables with TRUNCATE, which the audit log's trigger
refuses, as it must. Such a test gets `isolated_db` instead: a database copied from the
migrated test database (PostgreSQL's CREATE DATABASE … TEMPLATE) and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.db import connections
from django.test import Client
from psycopg import sql

from accounts.roles import Role
from config.celery_app import app as celery_app
from tests.factories import make_user
from tests.processes import BIN, Process, start_redis, wait_until

pytest_plugins = ["tests.aksim_server"]


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker):
    """Create and migrate the test database whatever the selection of tests.

    pytest-django's own fixture skips it when no selected test is marked `django_db`, which
    is the case when only `isolated_db` tests run; they need it as their template.
    """
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        created = setup_databases(verbosity=0, interactive=False)
    yield
    with django_db_blocker.unblock():
        teardown_databases(created, verbosity=0)


@pytest.fixture
def personas(db):
    """One user per role, named after it (viewer-user, operator-user, … admin-user), with the
    password PASSWORD."""
    return {role.value: make_user(role.value) for role in Role}


@pytest.fixture
def client_as(personas):
    """client_as("auditor") is a test client signed in as that persona."""

    def make(role: str) -> Client:
        client = Client()
        client.force_login(personas[role])
        return client

    return make


@dataclass(frozen=True)
class IsolatedDatabase:
    name: str
    url: str


def _admin_connection(settings_dict: dict) -> psycopg.Connection:
    return psycopg.connect(
        dbname="postgres",
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"] or None,
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        autocommit=True,
    )


@pytest.fixture
def isolated_db(django_db_setup, django_db_blocker) -> Iterator[IsolatedDatabase]:
    """A fresh, migrated PostgreSQL database that this test and its processes may commit to."""
    with django_db_blocker.unblock():
        settings_dict = connections["default"].settings_dict
        assert settings_dict["ENGINE"].endswith("postgresql"), "the suite runs on PostgreSQL"
        template = settings_dict["NAME"]
        name = f"{template}_{uuid.uuid4().hex[:10]}"
        connections.close_all()  # a template must have no open sessions
        with _admin_connection(settings_dict) as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        settings_dict["NAME"] = name
        auth = settings_dict["USER"] + (
            f":{settings_dict['PASSWORD']}" if settings_dict["PASSWORD"] else ""
        )
        url = f"postgres://{auth}@{settings_dict['HOST'] or 'localhost'}:{settings_dict['PORT'] or 5432}/{name}"
        try:
            yield IsolatedDatabase(name, url)
        finally:
            connections.close_all()
            settings_dict["NAME"] = template
            with _admin_connection(settings_dict) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[tuple[Process, str]]:
    """A Redis server of this test's own, which it may stop."""
    server, url = start_redis(tmp_path)
    try:
        yield server, url
    finally:
        server.stop()


@dataclass
class Worker:
    process: Process
    queue: str


def start_worker(
    database_url: str, log_path: Path, extra_env: dict[str, str] | None = None, *options: str
) -> Worker:
    """Start a real Celery worker process on this database and a queue of its own; the caller
    stops it (worker.process.stop()). `options` are extra `celery worker` flags."""
    queue = f"test-{uuid.uuid4().hex[:10]}"
    env = dict(os.environ, DATABASE_URL=database_url, CELERY_QUEUE=queue, **(extra_env or {}))
    process = Process(
        "worker",
        [
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "-l",
            "info",
            "-Q",
            queue,
            *(options or ("--concurrency", "1")),
            "-n",
            f"{queue}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        env,
        log_path,
    ).start()
    try:
        wait_until(
            lambda: " ready." in process.log() or not process.running(),
            60,
            "the Celery worker to be ready",
        )
        assert process.running(), process.log()
    except BaseException:
        process.stop()
        raise
    return Worker(process, queue)


def start_beat(database_url: str, worker: Worker, work: Path, extra_env: dict[str, str]) -> Process:
    """Start a real Celery beat that sends the schedule's tasks to `worker`'s queue; the caller
    stops it."""
    return Process(
        "beat",
        [str(BIN / "celery"), "-A", "config", "beat", "-l", "info", "-s", str(work / "beat")],
        dict(os.environ, DATABASE_URL=database_url, CELERY_QUEUE=worker.queue, **extra_env),
        work / "beat.log",
    ).start()


@contextmanager
def tasks_sent_to(worker: Worker) -> Iterator[None]:
    """Tasks this process sends without a queue (`.delay()`) go to the worker's queue."""
    default_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = worker.queue
    try:
        yield
    finally:
        celery_app.conf.task_default_queue = default_queue


@pytest.fixture
def celery_worker(isolated_db: IsolatedDatabase, tmp_path: Path) -> Iterator[Worker]:
    """A real Celery worker process (prefork pool) on the isolated database and its own queue."""
    worker = start_worker(isolated_db.url, tmp_path / "worker.log")
    try:
        yield worker
    finally:
        worker.process.stop()


@pytest.fixture(autouse=True)
def _empty_cache():
    # Pages cache aggregates per inventory version; tests build inventories without syncs.
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashing takes ~0.4 s per password by design; the suite hashes hundreds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
