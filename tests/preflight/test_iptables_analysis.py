"""preflight.iptables: parse iptables dumps and find exactly the rules AKS calls user-installed.

The dumps come from aksim, which labels every user rule it renders: the analyser must return
exactly those and nothing else. No database needed.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aksim.fleetfile import USER_RULE_KINDS, Cluster
from aksim.iptables import NodeDump, render_node
from preflight.iptables import OWNERS, UNKNOWN_TABLE, Owner, analyse, line_matches
from preflight.iptables.dump import shown
from tests.aksim.dump_cases import (
    CASES,
    cilium,
    family_text,
    first_node,
    kube_proxy_overlay,
    render_case,
)

FAMILIES = ("ipv4", "ipv6")
CASE_IDS = [case[0] for case in CASES]


def truth(dump: NodeDump, family: str) -> list[tuple[str, str, str]]:
    return sorted((u.table, u.chain, u.rule) for u in dump.user_rules if u.family == family)


def found(text: str) -> list[tuple[str, str, str]]:
    analysis = analyse(text)
    assert analysis.errors == []
    return sorted((f.table, f.chain, f.rule) for f in analysis.findings)


@pytest.fixture(scope="module")
def dumps() -> dict[str, NodeDump]:
    return {case_id: render_case(case_id) for case_id in CASE_IDS}


# --- exactly aksim's labelled user rules ---------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_findings_are_exactly_the_user_rules(
    dumps: dict[str, NodeDump], case_id: str, family: str
) -> None:
    dump = dumps[case_id]
    text = family_text(dump, family)
    analysis = analyse(text)
    assert analysis.errors == []
    assert sorted((f.table, f.chain, f.rule) for f in analysis.findings) == truth(dump, family)
    assert analysis.verdict == ("blocked" if truth(dump, family) else "clean")
    # every rule line of the dump was read, and attributed or reported
    assert len(analysis.rules) == text.count("\n-A ") + text.startswith("-A ")
    for rule in analysis.rules:
        assert (rule.owner is None) == ((rule.table, rule.chain, rule.rule) in truth(dump, family))


@pytest.mark.parametrize("case_id", ["cilium-clean", "kube-proxy-200-services", "kubenet-clean"])
def test_clean_nodes_are_clean(dumps: dict[str, NodeDump], case_id: str) -> None:
    for family in FAMILIES:
        analysis = analyse(family_text(dumps[case_id], family))
        assert analysis.verdict == "clean"
        assert analysis.to_json() == {"verdict": "clean", "findings": [], "errors": []}


def test_kube_proxy_node_has_service_chains(dumps: dict[str, NodeDump]) -> None:
    analysis = analyse(dumps["kube-proxy-200-services"].ipv4)
    owners = {r.owner for r in analysis.rules}
    assert {"kube-proxy", "kubelet", "AKS node setup (wireserver)"} <= owners
    assert sum(r.chain.startswith("KUBE-SEP-") for r in analysis.rules) > 200


EXPECTED_ORIGINS = {
    "calico": "Calico",
    "docker": "Docker",
    "istio": "Istio",
    "fail2ban": "fail2ban",
    "azure-npm": "Azure NPM",
}


@pytest.mark.parametrize("kind", USER_RULE_KINDS)
def test_origins(dumps: dict[str, NodeDump], kind: str) -> None:
    findings = analyse(dumps[f"kind-{kind}"].ipv4).findings
    assert findings
    origins = {f.origin for f in findings}
    if kind in EXPECTED_ORIGINS:
        assert EXPECTED_ORIGINS[kind] in origins
    elif kind == "security-agent":
        assert all(o.startswith("a custom chain (") for o in origins)
    elif kind == "handwritten":
        assert origins == {"hand-written"}
    assert all(f.hint.endswith(".") for f in findings)
    if kind == "azure-npm":
        assert all("AKS does not accept" in f.hint for f in findings)


def test_to_json_shape(dumps: dict[str, NodeDump]) -> None:
    data = analyse(dumps["all-kinds-cilium"].ipv4).to_json()
    assert data["verdict"] == "blocked"
    assert data["errors"] == []
    assert {tuple(sorted(f)) for f in data["findings"]} == {
        ("chain", "hint", "origin", "rule", "table")
    }


# --- dump variants -------------------------------------------------------------------------------


def with_counters(text: str) -> str:
    out = []
    for i, line in enumerate(text.splitlines()):
        if line.startswith("-A "):
            out.append(f"[{i * 7}:{i * 911}] {line}")
        elif line.startswith(":"):
            out.append(re.sub(r"\[0:0\]$", f"[{i}:{i * 60}]", line))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def as_dash_s(text: str) -> list[str]:
    """Each table as `iptables -t TABLE -S` prints it: -P, -N, then -A lines, no header."""
    tables: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], [])
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            current.append(f"-P {name} {policy}" if policy != "-" else f"-N {name}")
        elif line.startswith("-A "):
            current.append(line)
    return ["\n".join(lines) + "\n" for lines in tables.values()]


VARIANT_CASES = ["all-kinds-cilium", "all-kinds-kube-proxy", "cilium-clean", "kind-handwritten"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case_id", VARIANT_CASES)
def test_counters(dumps: dict[str, NodeDump], case_id: str, family: str) -> None:
    dump = dumps[case_id]
    assert found(with_counters(family_text(dump, family))) == truth(dump, family)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case_id", VARIANT_CASES)
def test_missing_commit_and_header(dumps: dict[str, NodeDump], case_id: str, family: str) -> None:
    dump = dumps[case_id]
    text = family_text(dump, family)
    no_commit = "\n".join(line for line in text.splitlines() if line != "COMMIT")
    assert found(no_commit) == truth(dump, family)
    # a dump cut before its first header: those rules have an unknown table
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("*"))
    headless = "\n".join(lines[first + 1 :])
    expected = sorted(
        (UNKNOWN_TABLE if table == lines[first][1:] else table, chain, rule)
        for table, chain, rule in truth(dump, family)
    )
    assert found(headless) == expected


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case_id", VARIANT_CASES)
def test_dash_s_form(dumps: dict[str, NodeDump], case_id: str, family: str) -> None:
    dump = dumps[case_id]
    rules: list[tuple[str, str]] = []
    for part in as_dash_s(family_text(dump, family)):
        analysis = analyse(part)
        assert analysis.errors == []
        assert all(t.name == UNKNOWN_TABLE for t in analysis.tables)
        rules.extend((f.chain, f.rule) for f in analysis.findings)
    assert sorted(rules) == sorted((chain, rule) for _, chain, rule in truth(dump, family))


def test_policies_chains_and_comments_are_kept() -> None:
    text = (
        "*filter\n"
        ":INPUT DROP [1:2]\n"
        ":FORWARD ACCEPT [0:0]\n"
        "-N MINE\n"
        "-P OUTPUT ACCEPT\n"
        '-A INPUT -m comment --comment "say \\"hi\\" \\\\ there" -j MINE\n'
        "-A INPUT -m comment --comment 'single quoted' -j ACCEPT\n"
        "-A INPUT -m comment --comment bare -j ACCEPT\n"
        "COMMIT\n"
    )
    analysis = analyse(text)
    assert analysis.errors == []
    (table,) = analysis.tables
    assert table.name == "filter"
    assert table.chains["INPUT"].policy == "DROP"
    assert table.chains["FORWARD"].policy == "ACCEPT"
    assert table.chains["OUTPUT"].policy == "ACCEPT"
    assert table.chains["MINE"].policy is None
    comments = [r.comments for r in table.chains["INPUT"].rules]
    assert comments == [('say "hi" \\ there',), ("single quoted",), ("bare",)]
    assert [r.line for r in analysis.rules] == [6, 7, 8]
    assert analysis.rules[0].target == "MINE"


def test_legacy_verbose_counters() -> None:
    text = "-P INPUT ACCEPT -c 10 20\n-A INPUT -c 5 300 -j KUBE-FIREWALL\n-A INPUT -c 1 2 -j DROP\n"
    analysis = analyse(text)
    assert analysis.errors == []
    assert [f.rule for f in analysis.findings] == ["-A INPUT -j DROP"]


# --- look-alikes are not owners ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "rule"),
    [
        ("nat", "-A POSTROUTING -j KIND-MASQ-AGENT"),
        ("nat", "-A KIND-MASQ-AGENT -j MASQUERADE"),
        ("nat", "-A IP-MASQ-AGENT-X -j MASQUERADE"),
        ("filter", "-A CILIUM-foo -j ACCEPT"),
        ("filter", "-A cilium_INPUT -j ACCEPT"),
        ("filter", "-A INPUT -j CILIUM-FORWARD"),
        ("filter", "-A KUBE-FIREWALL2 -j DROP"),
        ("filter", "-A INPUT -j KUBE-FIREWALLS"),
        ("nat", "-A KUBE-SERVICES-EXTRA -j ACCEPT"),
        ("nat", "-A KUBE-SVCX -j ACCEPT"),
        ("filter", '-A INPUT -m comment --comment "cilium feeder" -j ACCEPT'),
        ("filter", '-A INPUT -m comment --comment "AKS managed" -j DROP'),
        ("filter", "-A INPUT -s 10.0.0.1/32 -p udp -m udp --dport 68 -j ACCEPT"),
        ("filter", "-A INPUT -p udp -m udp --dport 67 -j ACCEPT"),
        ("filter", "-A FORWARD -d 168.63.129.16/32 -p tcp -m tcp --dport 443 -j DROP"),
        ("filter", "-A FORWARD -d 168.63.129.16/32 -p tcp -m tcp --dport 80 -j ACCEPT"),
        ("nat", "-A FORWARD -d 168.63.129.16/32 -p tcp -m tcp --dport 80 -j DROP"),
        ("filter", "-A POSTROUTING -j SWIFT"),
        ("nat", "-A POSTROUTING -j SWIFTLY"),
        ("nat", "-A SWIFT -j MASQUERADE"),
        (
            "raw",
            '-A OUTPUT -d 169.254.10.12/32 -p udp -m comment --comment "localdns: skip '
            'conntrack" -m udp --dport 53 -j NOTRACK',
        ),
        ("filter", "-A OUTPUT -d 168.63.129.16/32 -p tcp -m owner --uid-owner 0 -j ACCEPT"),
        ("security", "-A OUTPUT -d 168.63.129.16/32 -p tcp -m owner --uid-owner 1 -j ACCEPT"),
        ("security", "-A OUTPUT -d 168.63.129.16/32 -p tcp -m owner ! --uid-owner 0 -j ACCEPT"),
        ("filter", '-A INPUT -m comment --comment "x -j KUBE-FIREWALL" -j DROP'),
        ("filter", "-A INPUT -j LOG --log-prefix KUBE-FIREWALL"),
    ],
)
def test_look_alikes_are_findings(table: str, rule: str) -> None:
    analysis = analyse(f"*{table}\n{rule}\nCOMMIT\n")
    assert analysis.errors == []
    assert [(f.table, f.rule) for f in analysis.findings] == [(table, rule)]


@pytest.mark.parametrize(
    ("table", "rule", "owner"),
    [
        ("nat", "-A POSTROUTING -j IP-MASQ-AGENT", "AKS node setup (ip-masq-agent)"),
        ("filter", "-A CILIUM_foo -j ACCEPT", "Cilium"),
        ("mangle", '-A FOO -m comment --comment "cilium-feeder: X" -j X', "Cilium"),
        ("nat", "-A KUBE-SVC-ABC -j KUBE-SEP-DEF", "kube-proxy"),
        ("nat", "-A SWIFT-POSTROUTING -s 10.1.0.0/16 -j SNAT --to-source 10.0.0.4", None),
        ("filter", "-A INPUT -p udp -m udp --dport 68 -j ACCEPT", None),
    ],
)
def test_owners(table: str, rule: str, owner: str | None) -> None:
    analysis = analyse(f"*{table}\n{rule}\nCOMMIT\n")
    assert analysis.findings == []
    if owner is not None:
        assert analysis.rules[0].owner == owner


def test_owner_table_is_extensible() -> None:
    text = "*filter\n-A INPUT -p tcp --dport 9999 -j ACCEPT\nCOMMIT\n"
    assert analyse(text).verdict == "blocked"
    extra = Owner("ours", "our probe port", frozenset({"filter"}), line_matches(r".* 9999 .*"))
    assert analyse(text, (*OWNERS, extra)).verdict == "clean"


@pytest.mark.parametrize(
    ("rule", "origin"),
    [
        ("-A FLANNEL-FWD -j ACCEPT", "Flannel"),
        ("-A INPUT -j WEAVE-NPC", "Weave"),
        ("-A INPUT -j ufw-before-input", "ufw"),
        ("-A POSTROUTING -j KIND-MASQ-AGENT", "kind"),
        ("-A INPUT_direct -j ACCEPT", "firewalld"),
        ('-A INPUT -m comment --comment "generated for MicroK8s pods" -j ACCEPT', "MicroK8s"),
        ("-A INPUT -j MYCHAIN", "a custom chain (MYCHAIN)"),
        ("-A INPUT -p tcp --dport 22 -j ACCEPT", "hand-written"),
    ],
)
def test_origin_hints(rule: str, origin: str) -> None:
    (finding,) = analyse(rule + "\n").findings
    assert finding.origin == origin
    assert finding.hint


# --- malformed input -----------------------------------------------------------------------------


def test_malformed_lines_are_reported_with_line_numbers() -> None:
    text = "\n".join(
        [
            "# Generated by iptables-save",  # 1
            "*filter",  # 2
            ":INPUT ACCEPT [0:0]",  # 3
            ":",  # 4
            "-A",  # 5
            "this is not iptables",  # 6
            "-P INPUT",  # 7
            "[12:x] -A INPUT -j ACCEPT",  # 8
            '-A INPUT -m comment --comment "unterminated -j DROP',  # 9
            "-A INPUT -j KUBE-FIREWALL",  # 10
            "bad\x00line",  # 11
            "*",  # 12
            "COMMIT",  # 13
        ]
    )
    analysis = analyse(text)
    assert [e.line for e in analysis.errors] == [4, 5, 6, 7, 8, 9, 11, 12]
    assert all(e.message for e in analysis.errors)
    # the unterminated rule is still attributed (it blocks); the kubelet one is owned
    assert [f.line for f in analysis.findings] == [9]
    assert [r.line for r in analysis.rules] == [9, 10]


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("", "clean"),
        ("\n\n", "clean"),
        ("COMMIT", "clean"),
        # a line that cannot be read is never clean (issue 14 §2)
        ("\x00\x01\x02", "unreadable"),
        ("*", "unreadable"),
        ("-A", "unreadable"),
    ],
)
def test_degenerate_inputs(text: str, verdict: str) -> None:
    analysis = analyse(text)
    assert analysis.verdict == verdict
    assert analysis.to_json()["verdict"] == verdict


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    analysis = analyse(text)
    assert analysis.verdict in ("clean", "blocked", "unreadable", "incomplete")
    assert analysis.verdict != "clean" or not analysis.problems
    assert all(isinstance(e.line, int) for e in analysis.errors)
    analysis.to_json()


LINE_PARTS = st.sampled_from(
    ["-A", "-N", "-P", "-I", "*", ":", "[", "]", '"', "'", "\\", " ", "-j", "-g", "--comment",
     "cilium:", "KUBE-FIREWALL", "INPUT", "COMMIT", "filter", "0:0", "-c", "1", "\t", "!"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(LINE_PARTS, max_size=12).map("".join), max_size=20).map("\n".join))
def test_iptables_like_text_never_raises(text: str) -> None:
    analysis = analyse(text)
    lines = [shown(line) for line in text.splitlines()]  # a finding shows its rule escaped
    for finding in analysis.findings:
        assert any(finding.rule in line for line in lines), finding.rule


def test_both_families_concatenated() -> None:
    """iptables-save and ip6tables-save output in one input (tables repeat): all findings."""
    dump = render_node_with_kinds(kube_proxy_overlay(), list(USER_RULE_KINDS))
    combined = dump.ipv4 + dump.ipv6
    analysis = analyse(combined)
    assert analysis.errors == []
    assert sorted(f.rule for f in analysis.findings) == sorted(u.rule for u in dump.user_rules)


def render_node_with_kinds(cluster: Cluster, kinds: list[str]) -> NodeDump:
    return render_node(cluster, first_node(cluster), kinds)


def test_kube_proxy_and_cilium_shapes_differ() -> None:
    proxy = analyse(render_node_with_kinds(kube_proxy_overlay(), []).ipv4)
    cil = analyse(render_node_with_kinds(cilium(), []).ipv4)
    assert "kube-proxy" in {r.owner for r in proxy.rules}
    assert "kube-proxy" not in {r.owner for r in cil.rules}
    assert "Cilium" in {r.owner for r in cil.rules}
    assert proxy.verdict == cil.verdict == "clean"
