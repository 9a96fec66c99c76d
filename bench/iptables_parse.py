"""preflight/iptables on a 200,000-rule node: analyse() throughput and peak memory.

The dump is aksim's, the same on every run: a kube-proxy node with some 25,000 services (nearly
all of its rules are KUBE-SVC-* / KUBE-SEP-* rules with comments) and every kind of user rule,
IPv4 and IPv6, followed by a Cilium node's rules; kube-proxy's last KUBE-SEP-* rules are left out
so that exactly 200,000 rules remain. Run by `make bench`; needs no database.
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aksim.fleetfile import USER_RULE_KINDS, Cluster, Pool  # noqa: E402
from aksim.iptables import render_node  # noqa: E402
from preflight.iptables import analyse  # noqa: E402

RULES = 200_000
SERVICES = 25_000  # enough kube-proxy rules to cut down to RULES
RUNS = 7
TARGET = 200_000  # rules per second


def cluster(dataplane: str, services: int, seed: int) -> Cluster:
    pool = Pool(
        name="nodepool1",
        mode="System",
        os_type="Linux",
        os_sku="Ubuntu2204",
        count=1,
        vm_size="Standard_D4s_v5",
        node_image_version="AKSUbuntu-2204gen2containerd-202511.04.0",
        orchestrator_version="1.33.2",
        vmss_id="31415926",
    )
    return Cluster(
        key=f"bench{seed}",
        subscription_id="00000000-0000-0000-0000-000000000001",
        resource_group="rg-bench",
        name=f"aks-bench-{seed}",
        location="westeurope",
        kubernetes_version="1.33.2",
        network_plugin="azure",
        network_plugin_mode="overlay",
        network_dataplane=dataplane,
        network_policy="cilium" if dataplane == "cilium" else None,
        acns=dataplane == "cilium",
        acceleration_mode="None",
        tags={},
        entra=False,
        private=False,
        maintenance={},
        node_disruption_policy="Allow",
        services=services,
        seed=seed,
        pools=[pool],
    )


def rule_count(text: str) -> int:
    return text.count("\n-A ") + text.startswith("-A ")


def dump() -> tuple[str, int]:
    """The dump, and how many user-installed rules it holds."""
    proxy = cluster("azure", SERVICES, seed=200)
    node = render_node(proxy, proxy.nodes()[0], list(USER_RULE_KINDS))
    cil = cluster("cilium", 10, seed=201)
    cilium_node = render_node(cil, cil.nodes()[0], [])
    rest = node.ipv6 + cilium_node.ipv4 + cilium_node.ipv6
    excess = rule_count(node.ipv4) + rule_count(rest) - RULES
    if excess < 0:
        raise SystemExit(f"{SERVICES} services give {RULES + excess} rules, fewer than {RULES}")
    lines = node.ipv4.splitlines(keepends=True)
    for at in range(len(lines) - 1, -1, -1):
        if excess and lines[at].startswith("-A KUBE-SEP-"):
            del lines[at]
            excess -= 1
    text = "".join(lines) + rest
    assert rule_count(text) == RULES
    return text, len(node.user_rules)


def main() -> None:
    started = time.perf_counter()
    text, user_rules = dump()
    print(
        f"dump: {RULES:,} rules, {len(text) / 1e6:.1f} MB, {user_rules} of them user-installed "
        f"(made in {time.perf_counter() - started:.1f} s)"
    )
    seconds, cpu = [], []
    for _ in range(RUNS):
        wall, used = time.perf_counter(), time.process_time()
        analysis = analyse(text)
        seconds.append(time.perf_counter() - wall)
        cpu.append(time.process_time() - used)
        assert len(analysis.findings) == user_rules and not analysis.errors
        del analysis
    best, median = RULES / min(seconds), RULES / statistics.median(seconds)
    print(
        f"analyse: best {best:,.0f} rules/s, median {median:,.0f} rules/s over {RUNS} runs "
        f"(CPU best {RULES / min(cpu):,.0f} rules/s); target > {TARGET:,} rules/s: "
        f"{'PASS' if best > TARGET else 'MISS'}"
    )
    tracemalloc.start()
    analysis = analyse(text)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"peak memory allocated by analyse(): {peak / 1e6:.0f} MB "
        f"({peak / RULES:.0f} bytes per rule, the dump's text not counted); "
        f"{len(analysis.findings)} findings"
    )


if __name__ == "__main__":
    main()
