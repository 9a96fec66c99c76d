"""`manage.py iptables_check`, run as a real process: exit codes, report and --json shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.aksim.dump_cases import render_case

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "iptables_check", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def clean_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dumps") / "clean.txt"
    path.write_text(render_case("kube-proxy-200-services").ipv4)
    return path


@pytest.fixture(scope="module")
def blocked_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dumps") / "blocked.txt"
    path.write_text(render_case("all-kinds-cilium").ipv4)
    return path


def test_clean_dump_exits_0(clean_dump: Path) -> None:
    done = run(str(clean_dump))
    assert done.returncode == 0, done.stderr
    assert b"clean" in done.stdout
    done = run(str(clean_dump), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"verdict": "clean", "findings": [], "errors": []}


def test_blocked_dump_exits_3(blocked_dump: Path) -> None:
    dump = render_case("all-kinds-cilium")
    expected = [u.rule for u in dump.user_rules if u.family == "ipv4"]
    done = run(str(blocked_dump))
    assert done.returncode == 3, done.stderr
    report = done.stdout.decode()
    assert "BLOCKED" in report
    for rule in expected:
        assert rule in report
    done = run(str(blocked_dump), "--json")
    assert done.returncode == 3, done.stderr
    data = json.loads(done.stdout)
    assert set(data) == {"verdict", "findings", "errors"}
    assert data["verdict"] == "blocked"
    assert data["errors"] == []
    assert sorted(f["rule"] for f in data["findings"]) == sorted(expected)
    for finding in data["findings"]:
        assert set(finding) == {"table", "chain", "rule", "origin", "hint"}


def test_stdin(blocked_dump: Path, clean_dump: Path) -> None:
    done = run("-", "--json", stdin=blocked_dump.read_bytes())
    assert done.returncode == 3, done.stderr
    assert json.loads(done.stdout)["verdict"] == "blocked"
    done = run("-", stdin=clean_dump.read_bytes())
    assert done.returncode == 0, done.stderr


def test_malformed_lines_are_listed(tmp_path: Path) -> None:
    # issue 14 §2: a line that cannot be read (and a table without COMMIT) is never clean
    path = tmp_path / "partial.txt"
    path.write_text("*filter\n-A INPUT -j KUBE-FIREWALL\nnonsense here\n")
    done = run(str(path), "--json")
    assert done.returncode == 2, done.stderr
    errors = json.loads(done.stdout)["errors"]
    assert [(e["line"], e["text"]) for e in errors] == [(1, "*filter"), (3, "nonsense here")]
    assert "COMMIT" in errors[0]["message"]
    assert "unrecognised line" in errors[1]["message"]


def test_missing_file_exits_2(tmp_path: Path) -> None:
    done = run(str(tmp_path / "nope.txt"))
    assert done.returncode == 2
    assert b"nope.txt" in done.stderr
    # --json still prints one document a script can read, saying why there is no verdict.
    done = run(str(tmp_path / "nope.txt"), "--json")
    assert done.returncode == 2
    said = json.loads(done.stdout)
    assert said["verdict"] == "unreadable"
    assert "nope.txt: No such file or directory" in said["message"]


def test_a_misspelt_notification_setting_does_not_change_the_verdict(clean_dump: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "iptables_check", str(clean_dump)],
        capture_output=True,
        cwd=ROOT,
        env={
            **os.environ,
            "WAVEGATE_NOTIFY_DESTINATIONS": '[{"name": "x", "url": "https://x.example/", '
            '"format": "slak"}]',
        },
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "content",
    [
        bytes(range(256)) * 8,  # binary garbage
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
        b"",  # empty
        b"   \n\n",
        b"hello world\nnot a dump\n",
    ],
)
def test_unreadable_input_exits_2(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(content)
    done = run(str(path))
    assert done.returncode == 2, (done.stdout, done.stderr)
    done = run("-", "--json", stdin=content)
    assert done.returncode == 2, (done.stdout, done.stderr)
