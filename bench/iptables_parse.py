"""preflight/iptables on a 200,000-rule node: analyse() throughput and peak memory.

The dump is aksim's, the same on every run: a kube-proxy node with some 25,000 services (nearly
all of its rules are KUBE-SVC-* / KUBE-SEP-* rules with comments) and every kind of user rule,
IPv4 and IPv6, followed by a Cilium node's rules; kube-proxy's last KUBE-SEP-* rules are left out
so that exactly 200,000 rules remain. Run by `make bench`; needs no database.

Then the peak resident memory of a whole process that analyses a 50 MB dump (that dump repeated
to 50 MB, written to a file): a child process reads the file as `manage.py iptables_check` does,
a stream decoded a megabyte at a time, and reports its own peak resident memory (VmHWM, else
ru_maxrss; target <= 300 MiB).
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
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
BIG_DUMP_BYTES = 50_000_000
RSS_TARGET_MIB = 300  # peak resident memory of the whole process analysing BIG_DUMP_BYTES


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
    del analysis
    big_dump_peak(text)


def child(path: str) -> None:
    """Analyse the dump at `path` as a stream; print rules, findings, problems and this
    process's peak resident memory in MiB."""
    with open(path, "rb") as handle:
        analysis = analyse(handle)
    print(f"{len(analysis.rules)} {len(analysis.findings)} {len(analysis.problems)} {peak_rss()}")


def peak_rss() -> float:
    """This process's peak resident memory in MiB: VmHWM, its own memory's high-water mark.
    (Linux carries ru_maxrss over fork and exec, so a child started by a big parent would report
    the parent's size; ru_maxrss is the fallback where /proc is missing.)"""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def big_dump_peak(text: str) -> None:
    """The dump repeated to BIG_DUMP_BYTES, the last copy cut after a rule and its table closed."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as handle:
        left = BIG_DUMP_BYTES
        while left > 0:
            # the last copy cut after a whole rule, its table then closed
            cut = text.rfind("\n", 0, left - 7) + 1
            part = text if len(text) <= left else text[:cut] + "COMMIT\n"
            handle.write(part)
            left = 0 if part is not text else left - len(text)
        handle.flush()
        size = Path(handle.name).stat().st_size
        wall = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--child", handle.name],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.perf_counter() - wall
    rules, findings, problems, peak = done.stdout.split()
    print(
        f"{size / 1e6:.0f} MB dump ({int(rules):,} rules, {int(findings):,} findings, "
        f"{int(problems)} problems) analysed from a file in a child process in {seconds:.1f} s: "
        f"peak resident memory of that whole process {float(peak):.0f} MiB; target <= "
        f"{RSS_TARGET_MIB} MiB: {'PASS' if float(peak) <= RSS_TARGET_MIB else 'MISS'}"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
    else:
        main()
