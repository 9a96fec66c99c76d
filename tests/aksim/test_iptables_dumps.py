"""aksim.iptables: dumps that real iptables accepts, reproducible, with a truthful user-rule list.

The dumps are fed to Debian's own iptables-restore (nft and legacy backends) inside a network
namespace each test makes and deletes, so the host's rules are never touched. None of these
tests needs the database.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from aksim.fleetfile import USER_RULE_KINDS
from aksim.iptables import render_node
from tests.aksim.dump_cases import (
    CASES,
    CLEAN_SHAPES,
    cilium,
    family_text,
    first_node,
    kube_proxy_200,
    kube_proxy_overlay,
    make_cluster,
    render_case,
)

ROOT = Path(__file__).resolve().parents[2]
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
BACKENDS = ("nft", "legacy")


def rules_by_table(text: str) -> dict[str, list[str]]:
    """The "-A" lines of an iptables-save dump, per table."""
    tables: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("*"):
            current = line[1:]
            tables[current] = []
        elif line.startswith("-A "):
            tables[current].append(line)
    return tables


def body(text: str) -> list[str]:
    """A dump without its comment lines (the headers carry the program name and the time)."""
    return [line for line in text.splitlines() if not line.startswith("#")]


# --- real iptables in a network namespace of our own -------------------------------------------


def tool(name: str) -> str:
    path = shutil.which(name, path=SBIN_PATH)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/ensure_test_tools.sh installs it)")
    return path


def restore_tool(backend: str, family: str, action: str = "restore") -> str:
    prefix = "iptables" if family == "ipv4" else "ip6tables"
    return tool(f"{prefix}-{backend}-{action}")


@contextmanager
def netns() -> Iterator[str]:
    """A fresh network namespace: its own, empty iptables, deleted afterwards."""
    ip = tool("ip")
    name = f"wg-{uuid.uuid4().hex[:12]}"
    subprocess.run([ip, "netns", "add", name], check=True, capture_output=True, text=True)
    try:
        yield name
    finally:
        subprocess.run([ip, "netns", "delete", name], check=False, capture_output=True)


def in_netns(ns: str, argv: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("ip"), "netns", "exec", ns, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def restore(ns: str, backend: str, family: str, text: str, *, test_only: bool) -> None:
    argv = [restore_tool(backend, family)] + (["--test"] if test_only else [])
    done = in_netns(ns, argv, text)
    assert done.returncode == 0, f"{argv[0]} refused the {family} dump:\n{done.stderr}"


def save(ns: str, backend: str, family: str) -> str:
    done = in_netns(ns, [restore_tool(backend, family, "save")])
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- 1. real iptables accepts the dumps ---------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case_id", [case[0] for case in CASES])
def test_iptables_restore_accepts_the_dumps(case_id: str, backend: str) -> None:
    """`--test` parses every line; only a real restore lets the kernel check each target
    against the hooks its chain is reached from (DNAT only before routing, and so on)."""
    dump = render_case(case_id)
    with netns() as ns:
        for family in ("ipv4", "ipv6"):
            restore(ns, backend, family, family_text(dump, family), test_only=True)
            restore(ns, backend, family, family_text(dump, family), test_only=False)


@pytest.mark.parametrize(
    "case_id",
    ["cilium-clean", "kube-proxy-200-services", "all-kinds-cilium", "all-kinds-kube-proxy"],
)
def test_iptables_nft_save_prints_our_dump_back_unchanged(case_id: str) -> None:
    """Restored for real and saved again, the dump comes back line for line: every rule is in
    iptables' canonical form, and tables, chains and rules are in its order."""
    dump = render_case(case_id)
    with netns() as ns:
        for family in ("ipv4", "ipv6"):
            ours = family_text(dump, family)
            restore(ns, "nft", family, ours, test_only=False)
            saved = save(ns, "nft", family)
            saved_rules = set(body(saved))
            missing = [r for r in body(ours) if r.startswith("-A ") and r not in saved_rules]
            assert missing == [], f"{family}: not in canonical form: {missing[:5]}"
            assert body(saved) == body(ours)


@pytest.mark.parametrize("case_id", ["cilium-clean", "all-kinds-kube-proxy"])
def test_iptables_legacy_save_prints_every_table_back_unchanged(case_id: str) -> None:
    """The legacy backend prints tables in the order the kernel loaded them, but each table
    comes back as we wrote it."""
    dump = render_case(case_id)
    with netns() as ns:
        for family in ("ipv4", "ipv6"):
            ours = family_text(dump, family)
            restore(ns, "legacy", family, ours, test_only=False)
            assert rules_by_table(save(ns, "legacy", family)) == rules_by_table(ours)


# --- 2. determinism ---------------------------------------------------------------------------


def test_same_inputs_give_the_same_text() -> None:
    kinds = list(USER_RULE_KINDS)
    first = render_node(kube_proxy_overlay(), first_node(kube_proxy_overlay()), kinds)
    again = render_node(kube_proxy_overlay(), first_node(kube_proxy_overlay()), kinds)
    assert first == again


def test_output_does_not_depend_on_the_process() -> None:
    """Another interpreter, with another string-hash seed, renders the very same bytes."""
    script = (
        "import hashlib, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from tests.aksim.dump_cases import first_node, kube_proxy_overlay\n"
        "from aksim.fleetfile import USER_RULE_KINDS\n"
        "from aksim.iptables import render_node\n"
        "c = kube_proxy_overlay()\n"
        "d = render_node(c, first_node(c), list(USER_RULE_KINDS))\n"
        "print(hashlib.sha256((d.ipv4 + d.ipv6 + repr(d.user_rules)).encode()).hexdigest())\n"
    )
    local = render_node(
        kube_proxy_overlay(), first_node(kube_proxy_overlay()), list(USER_RULE_KINDS)
    )
    expected = hashlib.sha256(
        (local.ipv4 + local.ipv6 + repr(local.user_rules)).encode()
    ).hexdigest()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", script, str(ROOT)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
            check=True,
        )
        assert done.stdout.strip() == expected


def test_nodes_differ_in_their_variation() -> None:
    cluster = cilium()
    dumps = [render_node(cluster, node, list(USER_RULE_KINDS)) for node in cluster.nodes()]
    assert len({d.user_rules for d in dumps}) == len(dumps)
    # Cilium's DNS proxy port and the header's time are the node's own too.
    assert len({"\n".join(body(d.ipv4)) for d in dumps}) == len(dumps)
    assert len({d.ipv4.splitlines()[0] for d in dumps}) == len(dumps)


def test_kube_proxy_rules_are_the_same_on_every_node_of_a_cluster() -> None:
    """kube-proxy programs every service on every node: the service chains agree."""
    cluster = kube_proxy_200()
    dumps = [render_node(cluster, node) for node in cluster.nodes()]
    nat = [[r for r in rules_by_table(d.ipv4)["nat"] if "KUBE-S" in r] for d in dumps]
    assert all(rules == nat[0] for rules in nat)
    other = make_cluster(dataplane="azure", mode=None, services=200, acns=False, seed=999)
    assert rules_by_table(render_node(other, first_node(other)).ipv4)["nat"] != nat[0]


# --- 3. the truth -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", USER_RULE_KINDS)
def test_user_rules_are_exactly_the_lines_the_kind_added(kind: str) -> None:
    cluster = cilium()
    node = first_node(cluster)
    clean = render_node(cluster, node, [])
    dirty = render_node(cluster, node, [kind])
    assert clean.user_rules == ()
    assert dirty.user_rules, f"{kind} added no rule"
    for rule in dirty.user_rules:
        assert rule.kind == kind
        assert rule.rule.startswith(f"-A {rule.chain} ")
        assert rule.rule in rules_by_table(family_text(dirty, rule.family))[rule.table]
    for family in ("ipv4", "ipv6"):
        before = rules_by_table(family_text(clean, family))
        after = rules_by_table(family_text(dirty, family))
        for table in set(before) | set(after):
            added = Counter(after.get(table, [])) - Counter(before.get(table, []))
            removed = Counter(before.get(table, [])) - Counter(after.get(table, []))
            listed = Counter(
                r.rule for r in dirty.user_rules if r.family == family and r.table == table
            )
            assert removed == Counter(), f"{kind} removed platform rules from {family} {table}"
            assert added == listed, f"{kind}: {family} {table} lines added but not listed"


def test_all_kinds_list_every_kinds_rules() -> None:
    cluster = kube_proxy_overlay()
    node = first_node(cluster)
    together = render_node(cluster, node, list(USER_RULE_KINDS)).user_rules
    one_by_one = [
        r for kind in USER_RULE_KINDS for r in render_node(cluster, node, [kind]).user_rules
    ]
    assert Counter(together) == Counter(one_by_one)
    assert {r.kind for r in together} == set(USER_RULE_KINDS)
    v6 = [r for r in together if r.family == "ipv6"]
    assert [r.kind for r in v6] == ["handwritten"]


def test_kinds_default_to_the_fleet_file() -> None:
    cluster = cilium()
    dirty, clean = cluster.nodes()[:2]
    cluster.user_rules = {dirty.name: ["fail2ban", "docker"]}
    assert render_node(cluster, dirty) == render_node(cluster, dirty, ["fail2ban", "docker"])
    assert render_node(cluster, clean).user_rules == ()


def test_unknown_kind_and_windows_nodes_are_refused() -> None:
    cluster = cilium()
    with pytest.raises(ValueError, match="unknown user rule kinds"):
        render_node(cluster, first_node(cluster), ["ufw"])
    windows = make_cluster(dataplane="azure", os_type="Windows", os_sku="Windows2022")
    with pytest.raises(ValueError, match="no iptables"):
        render_node(windows, first_node(windows))


def test_dump_framing() -> None:
    dump = render_case("all-kinds-kube-proxy")
    header = r"^# Generated by ip6?tables-save v1\.8\.9 \(nf_tables\) on \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$"
    for text in (dump.ipv4, dump.ipv6):
        lines = text.splitlines()
        assert text.endswith("COMMIT\n" + lines[-1] + "\n")
        assert re.match(header, lines[0])
        assert lines[-1].startswith("# Completed on ")
    assert dump.ipv4.startswith("# Generated by iptables-save ")
    assert dump.ipv6.startswith("# Generated by ip6tables-save ")
    assert [line for line in dump.ipv4.splitlines() if line.startswith("*")] == [
        "*mangle",
        "*security",
        "*raw",
        "*filter",
        "*nat",
    ]


# --- 4. the allow-list (shared/reference/aks-ebpf-host-routing.md), checked independently --------

# Chains of kube-proxy and kubelet that AKS's node-image tests accept, with rules jumping to them.
KUBE = (
    r"(?:KUBE-SERVICES|KUBE-EXTERNAL-SERVICES|KUBE-NODEPORTS|KUBE-POSTROUTING|KUBE-MARK-MASQ"
    r"|KUBE-MARK-DROP|KUBE-FORWARD|KUBE-PROXY-FIREWALL|KUBE-PROXY-CANARY|KUBE-KUBELET-CANARY"
    r"|KUBE-SEP-\S+|KUBE-SVC-\S+)"
)
ANY_TABLE = [
    r"^-A KUBE-FIREWALL ",
    r" -j KUBE-FIREWALL(?: |$)",
    r"^-A IP-MASQ-AGENT ",
    r" -j IP-MASQ-AGENT(?: |$)",
    r"^-A CILIUM_\S+ ",
    rf"^-A {KUBE} ",
    rf" -j {KUBE}(?: |$)",
]
COMMENTS_ACCEPTED = ("cilium:", "cilium-feeder:", "AKS managed: added by AgentBaker")
WIRESERVER_DROP = r"^-A FORWARD -d 168\.63\.129\.16/32 -p tcp -m tcp --dport (?:80|32526) -j DROP$"
PER_TABLE = {
    "filter": [WIRESERVER_DROP, r"^-A INPUT -p udp -m udp --dport 68 -j ACCEPT$"],
    "mangle": [WIRESERVER_DROP],
    "nat": [
        r"^-A POSTROUTING -j SWIFT$",
        r"^-A SWIFT -s ",
        r"^-A POSTROUTING -j SWIFT-POSTROUTING$",
        r"^-A SWIFT-POSTROUTING -s ",
    ],
    "raw": [
        r"^-A (?:PREROUTING|OUTPUT) -d 169\.254\.10\.1[01]/32 -p (tcp|udp) "
        r'-m comment --comment "localdns: skip conntrack" -m \1 --dport 53 -j NOTRACK$'
    ],
    "security": [
        r"^-A OUTPUT -d 168\.63\.129\.16/32 -p tcp -m tcp --dport 53 -j ACCEPT$",
        r"^-A OUTPUT -d 168\.63\.129\.16/32 -p tcp -m owner --uid-owner 0 -j ACCEPT$",
        r"^-A OUTPUT -d 168\.63\.129\.16/32 -p tcp -m conntrack --ctstate INVALID,NEW -j DROP$",
    ],
}
COMMENT = re.compile(r'--comment ("(?:[^"\\]|\\.)*"|\S+)')


def accepted_by_aks(table: str, line: str) -> bool:
    if any(re.search(p, line) for p in ANY_TABLE + PER_TABLE.get(table, [])):
        return True
    comments = [c.strip('"') for c in COMMENT.findall(line)]
    return any(word in c for c in comments for word in COMMENTS_ACCEPTED)


@pytest.mark.parametrize("shape", CLEAN_SHAPES, ids=lambda f: f.__name__)
def test_every_platform_rule_is_on_the_allow_list(shape) -> None:
    cluster = shape()
    for node in cluster.nodes()[:3]:
        dump = render_node(cluster, node, [])
        for family in ("ipv4", "ipv6"):
            for table, rules in rules_by_table(family_text(dump, family)).items():
                refused = [r for r in rules if not accepted_by_aks(table, r)]
                assert refused == [], f"{shape.__name__} {family} {table}: {refused[:5]}"


@pytest.mark.parametrize("shape", [cilium, kube_proxy_overlay], ids=lambda f: f.__name__)
def test_no_user_rule_is_on_the_allow_list(shape) -> None:
    cluster = shape()
    for node in cluster.nodes()[:3]:
        dump = render_node(cluster, node, list(USER_RULE_KINDS))
        accepted = [r for r in dump.user_rules if accepted_by_aks(r.table, r.rule)]
        assert accepted == []


# --- 5. size -------------------------------------------------------------------------------------


def test_a_node_with_2000_services_gives_a_big_dump() -> None:
    cluster = make_cluster(dataplane="azure", mode=None, services=2000, acns=False, seed=2000)
    started = time.perf_counter()
    dump = render_node(cluster, first_node(cluster))
    elapsed = time.perf_counter() - started
    lines = dump.ipv4.splitlines()
    assert len(lines) > 10_000, f"{len(lines)} lines in {elapsed:.3f} s"
    assert sum(line.startswith("-A KUBE-SVC-") for line in lines) > 4_000
