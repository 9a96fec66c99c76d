"""The auditor's desk at a million events: exports, the offline verifier, the page.

Builds 1,000,000 valid chained events (spread over a year of realistic actions, actors,
clusters and plans) and four signed checkpoints in a throwaway database, then:
exports them with `manage.py audit_export` as CSV and as JSON lines in a subprocess (wall
time, peak resident memory, and the peak of a 100,000-event export to show it stays flat);
runs `python -m audit.verify_export` on both (must accept) and on copies with one changed byte,
one deleted line and a cut-off tail (each must be named, with its line); and measures the
/audit/ page's p50/p95 server time with and without filters, signed in as an auditor.
Run by `make bench`; uses its own PostgreSQL database (wavegate_bench_audit), created and
dropped. BENCH_AUDIT_EVENTS=100000 for a quick run.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit.chain import (  # noqa: E402
    GENESIS,
    HASHED_FIELDS,
    OPTIONAL_HASHED_FIELDS,
    canonical_json,
    event_hash,
    key_id,
    sign_checkpoint,
)

BENCH_DB = "wavegate_bench_audit"
ADMIN_URL = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
EVENTS = int(os.environ.get("BENCH_AUDIT_EVENTS", "1000000"))
SMALL = EVENTS // 10  # the export compared with the whole one, to show memory stays flat
CLUSTERS, PLANS, SEED = 10_000, 400, 16
START = datetime(2026, 1, 1, tzinfo=UTC)
MIB = 1024 * 1024
PAGE_TARGET_MS = 150
MEMORY_TARGET_MIB = 200

TEAMS = ("payments", "search", "checkout", "identity", "ledger", "catalog", "media", "ads")
ENVS = ("prod", "stage", "dev")
REGIONS = ("weu", "neu", "eus", "wus", "sea")
PEOPLE = [f"{name}" for name in ("alice", "bob", "chen", "dana", "emeka", "farah", "gus")] + [
    f"ops-{n:02d}" for n in range(1, 19)
]
COMMENTS = (
    "approved after CAB review",
    "preflight clean, change window agreed with the payments team",
    "rolling back: latency on the ingress after enablement",
    "go ahead",
)


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{ADMIN_URL}/postgres", "-q", "-c", sql], check=True)


def cluster_name(cluster: int) -> str:
    team = TEAMS[cluster % len(TEAMS)]
    env = ENVS[cluster % 7 % len(ENVS)]
    return f"aks-{team}-{env}-{REGIONS[cluster % len(REGIONS)]}-{cluster:05d}"


# --- the events ---------------------------------------------------------------------------------
def events(head: int, people: dict[str, int], after: tuple[int, str, datetime]) -> Iterator[dict]:
    """Chained events from after the log's last (seq, hash, at) up to event `head`, mostly
    rollout steps and inventory changes, few sign-ins and refusals; every field as
    audit.record writes it."""
    rng = random.Random(SEED)  # noqa: S311 - reproducible make-believe, not secrets
    last_seq, prev, at = after
    names = list(people)
    for seq in range(last_seq + 1, head + 1):
        at += timedelta(microseconds=rng.randrange(1, 60_000_000))
        cluster = rng.randrange(1, CLUSTERS + 1)
        plan = rng.randrange(1, PLANS + 1)
        person = rng.choice(names)
        roll = rng.random()
        event = {
            "seq": seq,
            "at": at,
            "actor_id": None,
            "actor_name": "system",
            "actor_ip": None,
            "object_type": "fleet.cluster",
            "object_id": str(cluster),
            "object_label": cluster_name(cluster),
            "before": None,
            "after": None,
            "request_id": f"task-{rng.getrandbits(48):012x}",
            "cluster_id": cluster,
            "plan_id": None,
        }
        if roll < 0.45:  # the engine moving targets along
            step = rng.choices(
                ("started", "change_sent", "verifying", "done", "failed", "rollback_started"),
                (25, 25, 20, 27, 2, 1),
            )[0]
            event.update(
                action=f"rollout.target_{step}",
                object_type="rollout.rollouttarget",
                object_id=str(plan * 100_000 + cluster),
                plan_id=plan,
                after={"state": step, "wave": rng.randrange(1, 6)},
            )
        elif roll < 0.75:  # inventory syncs
            action = rng.choices(
                ("cluster.changed", "cluster.discovered", "cluster.removed"), (90, 8, 2)
            )[0]
            event.update(
                action=action,
                before={"kubernetes_version": "1.30.4"} if action == "cluster.changed" else None,
                after={"kubernetes_version": "1.31.2"} if action != "cluster.removed" else None,
            )
        elif roll < 0.85:  # preflight
            action = rng.choice(("preflight.scan_started", "preflight.scan_finished"))
            event.update(
                action=action, object_type="fleet.preflightscan", after={"verdict": "clean"}
            )
        elif roll < 0.96 or roll >= 0.995:  # people deciding about plans and waves
            action = rng.choices(
                (
                    "rollout.plan_created",
                    "rollout.plan_submitted",
                    "rollout.wave_approved",
                    "rollout.wave_started",
                    "rollout.wave_done",
                    "rollout.decision_refused",
                ),
                (10, 10, 30, 25, 20, 5),
            )[0]
            said: dict[str, object] = {"comment": rng.choice(COMMENTS), "wave": rng.randrange(1, 6)}
            if action == "rollout.decision_refused":
                said = {"reason": "four eyes: the plan's author cannot approve its waves"}
            _by(event, person, people, rng)
            event.update(
                action=action,
                object_type="rollout.rolloutplan",
                object_id=str(plan),
                object_label=f"plan {plan}: eBPF host routing, ring {plan % 4}",
                cluster_id=None,
                plan_id=plan,
                after=said,
            )
        else:  # sign-ins, sign-outs, failures, role changes
            action = rng.choices(
                ("user.signed_in", "user.signed_out", "user.sign_in_failed", "user.roles_changed"),
                (50, 35, 12, 3),
            )[0]
            _by(event, person, people, rng)
            event.update(
                action=action,
                object_type="auth.user",
                object_id=str(people[person]),
                object_label=person,
                cluster_id=None,
                after={"roles": ["operator"]} if action == "user.roles_changed" else None,
            )
        event["prev_hash"] = prev
        event["hash"] = prev = event_hash(event)
        yield event


def _by(event: dict, person: str, people: dict[str, int], rng: random.Random) -> None:
    event.update(
        actor_id=people[person],
        actor_name=person,
        actor_ip=f"10.{rng.randrange(0, 4)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}",
        request_id=f"{rng.getrandbits(64):016x}",
    )


# Every column the chain hashes, and the hash: the table less its generated columns.
COLUMNS = (*HASHED_FIELDS, *OPTIONAL_HASHED_FIELDS, "hash")


def build(key: bytes) -> None:
    """Bring the log to EVENTS events, inserted with COPY (the secondary indexes dropped
    meanwhile and rebuilt after, as a restore would), and sign checkpoints at a quarter, half,
    three quarters and the head."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from audit.models import AuditCheckpoint, AuditEvent

    # Creating users is audited: the generated events follow those.
    people = {name: get_user_model().objects.create(username=name).pk for name in PEOPLE}
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash", "at").first()
    after = last or (0, GENESIS, START)
    hashes: dict[int, str] = {}
    marks = {EVENTS // 4, EVENTS // 2, EVENTS * 3 // 4, EVENTS}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_auditevent' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint "
            "WHERE conrelid = 'audit_auditevent'::regclass)"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        columns = ", ".join(COLUMNS)
        with cursor.cursor.copy(f"COPY audit_auditevent ({columns}) FROM STDIN") as copy:
            for event in events(EVENTS, people, after):
                for field in ("before", "after"):
                    if event[field] is not None:
                        event[field] = canonical_json(event[field]).decode()
                copy.write_row([event[c] for c in COLUMNS])
                if event["seq"] in marks:
                    hashes[event["seq"]] = event["hash"]
        copied = time.perf_counter() - started
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute("VACUUM ANALYZE audit_auditevent")
    print(
        f"built {EVENTS - after[0]:,} chained events after the {after[0]} that creating users "
        f"recorded: hashed and copied in {copied:.1f} s, "
        f"{len(indexes)} secondary indexes rebuilt and vacuumed in "
        f"{time.perf_counter() - started - copied:.1f} s"
    )
    for seq in sorted(marks):
        checkpoint = AuditCheckpoint(seq=seq, hash=hashes[seq], at=after[2] + timedelta(days=400))
        checkpoint.key_id = key_id(key)
        checkpoint.signature = sign_checkpoint(key, checkpoint.signed_fields())
        checkpoint.save()


# --- exports and the verifier -------------------------------------------------------------------
def run_measured(
    argv: list[str], watch: Path | None = None
) -> tuple[int, float, float, list, str, str]:
    """Run argv; its exit code, wall seconds, peak RSS (MiB), RSS samples (seconds, MiB, bytes
    written to `watch`), stdout and stderr.

    The peak is the child's own high-water mark (VmHWM), read from /proc every 0.1 s until it
    ends: getrusage's ru_maxrss would count this (large) process's pages at the fork too.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=err)
        samples: list[tuple[float, float, int]] = []
        peak = [0.0]
        done = threading.Event()

        def sample() -> None:
            status = Path(f"/proc/{child.pid}/status")
            while not done.wait(0.1):
                try:
                    text = status.read_text()
                except OSError:
                    return
                rss, hwm = re.search(r"VmRSS:\s+(\d+)", text), re.search(r"VmHWM:\s+(\d+)", text)
                if not (rss and hwm):
                    return  # a zombie: it has ended
                peak[0] = max(peak[0], int(hwm[1]) / 1024)
                written = watch.stat().st_size if watch and watch.exists() else 0
                samples.append((time.perf_counter() - started, int(rss[1]) / 1024, written))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        child.wait()
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        return child.returncode, elapsed, peak[0], samples, out.read().decode(), err.read().decode()


def export(fmt: str, path: Path, *extra: str) -> float:
    argv = [
        sys.executable,
        "manage.py",
        "audit_export",
        "--format",
        fmt,
        "--output",
        str(path),
        *extra,
    ]
    code, elapsed, peak, samples, out, err = run_measured(
        argv, path.with_name(path.name + ".partial")
    )
    assert code == 0, err
    size = path.stat().st_size
    along = ", ".join(
        f"{mib:.0f} MiB at {written / size:.0%}"
        for _, mib, written in _spread([s for s in samples if s[2]], 4)
    )
    print(
        f"  {fmt} {out.strip().split(' and ')[0]}: {elapsed:.1f} s, {size / MIB:.0f} MiB file, "
        f"peak RSS {peak:.0f} MiB (target < {MEMORY_TARGET_MIB} MiB; along the way: {along})"
    )
    return peak


def _spread(samples: list, count: int) -> list:
    if len(samples) <= count:
        return samples
    return [samples[int(i * (len(samples) - 1) / (count - 1))] for i in range(count)]


def verify(path: Path, key_file: Path) -> tuple[int, str, str, float, float]:
    argv = [sys.executable, "-m", "audit.verify_export", str(path), "--key-file", str(key_file)]
    code, elapsed, peak, _, out, err = run_measured(argv)
    return code, out, err, elapsed, peak


def exports_and_verifier(work: Path, key_file: Path) -> None:
    from audit.models import AuditEvent

    print(f"exports with manage.py audit_export ({EVENTS:,} events):")
    _, _, baseline, *_ = run_measured([sys.executable, "manage.py", "check"])
    print(
        f"  (for scale: `manage.py check`, Django and the apps loaded, peaks at {baseline:.0f} MiB)"
    )
    since = AuditEvent.objects.get(seq=EVENTS - SMALL + 1).at.isoformat()
    small_peak = export("csv", work / "small.csv", "--since", since)
    files = {fmt: work / f"audit.{fmt}" for fmt in ("csv", "jsonl")}
    peaks = [export(fmt, path) for fmt, path in files.items()]
    print(
        f"  memory flat: peak {small_peak:.0f} MiB for {SMALL:,} events, "
        f"{max(peaks):.0f} MiB for {EVENTS:,}"
    )
    (work / "small.csv").unlink()

    print("offline verifier (python -m audit.verify_export --key-file):")
    for fmt, path in files.items():
        code, out, err, elapsed, peak = verify(path, key_file)
        verdict = "accepted" if code == 0 else f"REFUSED (exit {code}): {err.strip()[:300]}"
        said = "; ".join(out.strip().splitlines()[1:-1])
        print(f"  {fmt}: {verdict} in {elapsed:.1f} s, peak RSS {peak:.0f} MiB: {said}")
    for fmt, path in files.items():
        tampered(fmt, path, key_file)
        path.unlink()


def tampered(fmt: str, path: Path, key_file: Path) -> None:
    """A changed byte, a deleted line and a cut-off tail: each must be named, with its line."""
    from audit.models import AuditCheckpoint

    copy = path.with_name("tampered." + fmt)
    header_lines = 2 if fmt == "csv" else 1
    checkpoints = AuditCheckpoint.objects.count()
    first_event_line = header_lines + checkpoints + 1

    def line_of(seq: int) -> int:
        return first_event_line + seq - 1

    changed_seq = EVENTS // 2 + 1
    shutil.copyfile(path, copy)
    offset = _offset_of_line(path, line_of(changed_seq))
    with open(copy, "r+b") as data:
        data.seek(offset)
        line = data.readline()
        at = line.index(b"aks-") if b"aks-" in line else line.index(b"20")
        data.seek(offset + at + 1)
        data.write(bytes([line[at + 1] ^ 0x01]))  # one bit of one byte
    _named(fmt, "one changed byte", copy, key_file, line_of(changed_seq))

    deleted_seq = EVENTS * 7 // 10
    with open(path, "rb") as source, open(copy, "wb") as out:
        for number, line in enumerate(source, start=1):
            if number != line_of(deleted_seq):
                out.write(line)
    _named(fmt, "one deleted line", copy, key_file, line_of(deleted_seq))

    _head(path, int(path.stat().st_size * 0.95), copy)
    _named(fmt, "a cut-off tail (the last 5% of bytes)", copy, key_file, None)
    copy.unlink()


def _head(path: Path, count: int, copy: Path) -> None:
    """The first `count` bytes of `path`, as `copy`."""
    with open(path, "rb") as source, open(copy, "wb") as out:
        while count > 0:
            chunk = source.read(min(count, MIB))
            out.write(chunk)
            count -= len(chunk)


def _offset_of_line(path: Path, wanted: int) -> int:
    offset = 0
    with open(path, "rb") as data:
        for number, line in enumerate(data, start=1):
            if number == wanted:
                return offset
            offset += len(line)
    raise ValueError(f"{path} has no line {wanted}")


def _named(fmt: str, what: str, copy: Path, key_file: Path, line: int | None) -> None:
    code, _, err, elapsed, _ = verify(copy, key_file)
    problems = [p.removeprefix("PROBLEM: ") for p in err.splitlines() if p.startswith("PROBLEM:")]
    first = problems[0] if problems else "(nothing named)"
    if line is None:
        ok = code == 1 and "cut off" in first
    else:
        ok = code == 1 and first.startswith(f"line {line}:")
    expected = f" (expected line {line})" if line else ""
    print(
        f"  {fmt}, {what}: exit {code}, {'NAMED' if ok else 'MISSED'}{expected} in "
        f"{elapsed:.1f} s: {first}"
    )


# --- the page -----------------------------------------------------------------------------------
def pages() -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from audit.models import AuditEvent

    auditor = get_user_model().objects.create(username="bench-auditor")
    auditor.groups.add(Group.objects.get(name="auditor"))
    client = Client()
    client.force_login(auditor)
    middle = EVENTS // 2
    day = AuditEvent.objects.get(seq=middle).at.date().isoformat()  # a day in the thick of it
    print(f"/audit/ page as an auditor at {EVENTS:,} events (target p95 <= {PAGE_TARGET_MS} ms):")
    for label, url in (
        ("newest, no filter", "/audit/"),
        ("older page (before= cursor, no filter)", f"/audit/?before={middle}"),
        ("group rollout", "/audit/?category=rollout"),
        ("group access, refused", "/audit/?category=access&outcome=refused"),
        ("action rollout.decision_refused", "/audit/?action=rollout.decision_refused"),
        ("outcome refused", "/audit/?outcome=refused"),
        ("actor alice", "/audit/?actor=alice"),
        ("actor alice, older page", f"/audit/?actor=alice&before={middle}"),
        ("cluster 1234", "/audit/?cluster=1234"),
        ("plan 42", "/audit/?plan=42"),
        ("plan 42 and group rollout", "/audit/?plan=42&category=rollout"),
        ("one day", f"/audit/?since={day}&until={day}"),
        ("one day, actor bob", f"/audit/?since={day}&until={day}&actor=bob"),
        ("search 'payments'", "/audit/?q=payments"),
        ("search 'CAB review'", "/audit/?q=CAB+review"),
        ("search 'payments', cluster 1234", "/audit/?q=payments&cluster=1234"),
    ):
        try:
            first = client.get(url)
        except Exception as error:  # the page is being written: report, do not stop the bench
            print(f"  {label}: skipped, the page raised {type(error).__name__}: {error}")
            continue
        if first.status_code != 200:
            print(f"  {label}: skipped, {url} answered {first.status_code}")
            continue
        times: list[float] = []
        # 30 requests, or as many as fit in 10 s (at least 5) when the page is that slow.
        while len(times) < 30 and (len(times) < 5 or sum(times) < 10_000):
            started = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        times.sort()
        p95 = times[max(0, int(len(times) * 0.95) - 1)]
        print(
            f"  {label}: p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms "
            f"({'PASS' if p95 <= PAGE_TARGET_MS else 'MISS'}) of {len(times)} requests, "
            f"{len(queries)} SQL queries"
        )


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="wavegate-bench-audit-"))
    key = os.urandom(48).hex().encode()
    key_file = work / "audit.key"
    key_file.write_bytes(key)
    psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    psql(f"CREATE DATABASE {BENCH_DB}")
    os.environ.update(
        DATABASE_URL=f"{ADMIN_URL}/{BENCH_DB}",
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
        WAVEGATE_VAR_DIR=str(work),
        DJANGO_ALLOWED_HOSTS="testserver,localhost",
        WAVEGATE_AUDIT_HMAC_KEY_FILE=str(key_file),
        WAVEGATE_AUDIT_CHECKPOINT_FILE=str(work / "checkpoints.jsonl"),
    )
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        build(key)
        exports_and_verifier(work, key_file)
        pages()
    finally:
        from django.db import connections

        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
