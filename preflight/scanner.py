"""Preflight's iptables scan of one cluster, through its Kubernetes API (shared/DESIGN.md §5).

`scan(kubeconfig, ...)` reads the Linux nodes and their CiliumNode labels, creates a namespace
(Pod Security Admission `privileged`) and a short-lived privileged DaemonSet whose pod on each
node runs the host's own `iptables-save` / `ip6tables-save` through `nsenter -t 1 -m -n` and
prints them framed; it waits, with a deadline, until every node's pod has printed, reads the
logs, analyses each dump with preflight/iptables, and always deletes what it created.

No Django here: the caller passes the kubeconfig (from the Azure gateway), the owner table and
the settings, and stores the `Outcome`; the client comes from fleet/kubernetes.py. A node whose
pod never printed makes the scan `incomplete`, naming the node; a scan is `clean` only when
every Linux node was read and nothing blocks.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from fleet.kubernetes import (
    CannotConnect,
    connect,
    explain,
    labelled_user_rules,
    list_all,
)
from preflight import iptables

log = logging.getLogger(__name__)

SCAN_LABEL = "wavegate.io/scan"
SCAN_LABEL_VALUE = "iptables"
# The Wavegate installation that created a scan namespace: its reaper deletes only its own.
INSTALLATION_LABEL = "wavegate.io/installation"
NAMESPACE_PREFIX = "wavegate-scan-"
CONTAINER = "scan"

# What each scan pod runs: both families framed as shared/DESIGN.md §5 says, then it sleeps so
# that the DaemonSet does not restart it while the scan reads the logs, and no longer than
# SLEEP_SECONDS (a little more than a scan may take): a scan pod left behind by a worker that died
# ends by itself, and preflight/reaper.py deletes its namespace. (The API server refuses
# activeDeadlineSeconds in a DaemonSet's pod template, so the sleep is the pod's own limit.)
# iptables-nft warns when legacy tables also exist: the legacy ones are then dumped into the
# same frame, since AKS's check sees them too.
SCRIPT = r"""
node="${NODE_NAME:?}"
dump() {
  out="$(nsenter -t 1 -m -n -- "$1" 2>&1)"; rc=$?
  printf '%s\n' "$out"
  case "$out" in *"tables present, use $2"*)
    nsenter -t 1 -m -n -- "$2" 2>&1 ;;
  esac
  return $rc
}
echo "### wavegate-scan node=$node family=ipv4 begin"
dump iptables-save iptables-legacy-save; rc=$?
echo "### wavegate-scan node=$node family=ipv4 end rc=$rc"
echo "### wavegate-scan node=$node family=ipv6 begin"
dump ip6tables-save ip6tables-legacy-save; rc=$?
echo "### wavegate-scan node=$node family=ipv6 end rc=$rc"
echo "### wavegate-scan node=$node done"
exec sleep "${SLEEP_SECONDS:?}"
"""

_FRAME = re.compile(
    r"### wavegate-scan node=(?P<node>\S+) "
    r"(?:family=(?P<family>ipv4|ipv6) (?:(?P<begin>begin)|end rc=(?P<rc>-?\d+))|(?P<done>done))"
)
FAMILIES = ("ipv4", "ipv6")


@dataclass(frozen=True)
class Settings:
    image: str  # with its digest when pinned: repo@sha256:... or repo:tag
    deadline_seconds: float = 300.0
    poll_seconds: float = 2.0
    request_timeout_seconds: float = 20.0
    # Labels each scan namespace (INSTALLATION_LABEL); "" leaves the label off.
    installation: str = ""
    # How long a scan pod sleeps once it has printed, at most (a scan's time limit and a bit).
    pod_sleep_seconds: int = 600
    # The most of one node's log a scan reads (limitBytes); a longer log leaves the node unread.
    max_dump_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class NodeFinding:
    node: str
    family: str
    finding: iptables.Finding


@dataclass
class Outcome:
    status: str  # clean | blocked | incomplete | error
    message: str = ""
    nodes_expected: list[str] = field(default_factory=list)
    nodes_read: list[str] = field(default_factory=list)
    unread: dict[str, str] = field(default_factory=dict)  # node -> why it was not read
    labelled: list[str] = field(default_factory=list)  # CiliumNode says user rules
    findings: list[NodeFinding] = field(default_factory=list)
    parse_errors: list[dict[str, Any]] = field(default_factory=list)
    cleanup_error: str = ""


# --- reading the pods' output ----------------------------------------------------------------


@dataclass
class NodeDump:
    # family -> its dump, as given to read_frames: bytes (a pod's log) or text
    dumps: dict[str, bytes | str] = field(default_factory=dict)
    rcs: dict[str, int] = field(default_factory=dict)  # family -> exit code
    done: bool = False


def read_frames(log: bytes | str, node: str) -> NodeDump:
    """The framed dumps a scan pod printed for `node`, each a slice of `log` (bytes stay bytes:
    nothing is decoded here but the frame lines, so every byte of a dump reaches the analyser).
    Lines outside a frame are ignored; a frame that never ended is not counted, so a pod still
    printing (or a log cut short) is not taken as done."""
    found = NodeDump()
    binary = isinstance(log, bytes)
    marker: Any = b"### wavegate-scan " if binary else "### wavegate-scan "
    newline: Any = b"\n" if binary else "\n"
    family: str | None = None
    start = pos = 0
    while True:
        at = log.find(marker, pos)
        if at < 0:
            break
        end = log.find(newline, at)
        end = len(log) if end < 0 else end
        pos = end + 1
        if at and log[at - 1 : at] != newline:  # not at the start of a line
            continue
        line = log[at:end]
        m = _FRAME.fullmatch((iptables.decode(line) if isinstance(line, bytes) else line).rstrip())
        if m is None or m["node"] != node:
            continue
        if m["done"]:
            found.done = True
        elif m["begin"]:
            family, start = m["family"], pos
        elif family is not None and family == m["family"]:
            found.dumps[family] = log[start:at]
            found.rcs[family] = int(m["rc"])
            family = None
    found.done = found.done and all(f in found.rcs for f in FAMILIES)
    return found


def _first_line(dump: bytes | str) -> str:
    text = iptables.decode(dump[:4096]) if isinstance(dump, bytes) else dump[:4096]
    return iptables.shown(next((ln for ln in text.splitlines() if ln.strip()), ""), 200)


def analyse_node(
    node: str, dump: NodeDump, owners: Iterable[iptables.Owner]
) -> tuple[list[NodeFinding], list[dict[str, Any]], str]:
    """(findings, problems reading it, why unread or "") for one node's dumps. A dump with a
    line the analyser cannot read, cut short (a table without COMMIT) or whose other backend
    was not read leaves the node unread, naming the line: never clean. Its findings still
    count (a rule read is a rule that blocks)."""
    failed = [f for f in FAMILIES if dump.rcs.get(f, 1) != 0]
    if failed:
        family = failed[0]
        first = _first_line(dump.dumps.get(family, ""))
        what = "iptables-save" if family == "ipv4" else "ip6tables-save"
        return (
            [],
            [],
            f"{what} exited {dump.rcs.get(family)} on the node" + (f": {first}" if first else ""),
        )
    findings: list[NodeFinding] = []
    errors: list[dict[str, Any]] = []
    unread: list[str] = []
    for family in FAMILIES:
        result = iptables.analyse(dump.dumps.get(family, ""), owners)
        findings.extend(NodeFinding(node, family, f) for f in result.findings)
        problems = result.problems
        errors.extend(
            {"node": node, "family": family, "line": e.line, "message": e.message, "text": e.text}
            for e in problems
        )
        if problems:
            e = problems[0]
            unread.append(
                f"its {family} dump could not be read whole: "
                + (f"line {e.line}: " if e.line else "")
                + e.message
                + (f": {e.text}" if e.text else "")
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            )
    return findings, errors, "; ".join(unread)


# --- the Kubernetes objects ------------------------------------------------------------------


def namespace_body(name: str, installation: str = "") -> dict[str, Any]:
    labels = {
        SCAN_LABEL: SCAN_LABEL_VALUE,
        "app.kubernetes.io/managed-by": "wavegate",
    }
    if installation:
        labels[INSTALLATION_LABEL] = installation
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = "privileged"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def daemonset_body(name: str, image: str, sleep_seconds: int = 600) -> dict[str, Any]:
    labels = {SCAN_LABEL: SCAN_LABEL_VALUE, "app.kubernetes.io/managed-by": "wavegate"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {SCAN_LABEL: SCAN_LABEL_VALUE}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "hostPID": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 0,
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"operator": "Exists"}],  # every taint, cordoned nodes too
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["/bin/sh", "-c", SCRIPT],
                            "env": [
                                {
                                    "name": "NODE_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                                },
                                {"name": "SLEEP_SECONDS", "value": str(max(1, int(sleep_seconds)))},
                            ],
                            "securityContext": {"privileged": True},
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "32Mi"},
                                "limits": {"cpu": "200m", "memory": "128Mi"},
                            },
                        }
                    ],
                },
            },
        },
    }


# --- talking to the cluster ------------------------------------------------------------------


def _pinned_node(pod: dict[str, Any]) -> str | None:
    """The node a DaemonSet pod is for: spec.nodeName once scheduled, else the node its
    required affinity names (the DaemonSet controller pins each pod that way)."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for expr in term.get("matchFields") or []:
            if expr.get("key") == "metadata.name" and expr.get("operator") == "In":
                values = expr.get("values") or []
                if values:
                    return str(values[0])
    return None


def _waiting_reason(pod: dict[str, Any]) -> str:
    """Why a pod has not printed yet, from its status."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            why = condition.get("message") or condition.get("reason")
            return f"its scan pod was never scheduled: {why}"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if "waiting" in state:
            waiting = state["waiting"] or {}
            detail = f": {waiting['message']}" if waiting.get("message") else ""
            return f"its scan pod is waiting ({waiting.get('reason')}{detail})"
        if "terminated" in state:
            ended = state["terminated"] or {}
            return f"its scan pod ended ({ended.get('reason')}, exit code {ended.get('exitCode')})"
    return f"its scan pod is {status.get('phase') or 'Unknown'}"


def scan(
    kubeconfig: dict[str, Any],
    *,
    name: str,
    settings: Settings,
    owners: Iterable[iptables.Owner] = iptables.OWNERS,
    token: Callable[[], str] | None = None,
    private: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Scan every Linux node of one cluster. `name` names the namespace and DaemonSet (unique
    per scan). Never raises for the cluster's answers: the Outcome says what happened."""
    owners = tuple(owners)
    try:
        api = connect(kubeconfig, token)
    except CannotConnect as exc:
        return Outcome("error", str(exc))
    try:
        return _scan(api, name, settings, owners, private, sleep)
    finally:
        api.close()


def _scan(
    api: k8s.ApiClient,
    name: str,
    settings: Settings,
    owners: tuple[iptables.Owner, ...],
    private: bool,
    sleep: Callable[[float], None],
) -> Outcome:
    core = k8s.CoreV1Api(api)
    apps = k8s.AppsV1Api(api)
    timeout = settings.request_timeout_seconds
    try:
        nodes = list_all(
            core.list_node, label_selector="kubernetes.io/os=linux", _request_timeout=timeout
        )
        labelled = labelled_user_rules(api, timeout)
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        unreachable = not isinstance(exc, ApiException) or exc.status == 0
        if private and unreachable:
            return Outcome(
                "incomplete",
                "This is a private cluster: its API server is reachable only from inside its "
                "virtual network, so its nodes were not read. Run a Wavegate worker with network "
                "access to it (or through a jump host), then scan again.",
            )
        return Outcome("error", explain(exc, "Listing the cluster's nodes"))
    expected = sorted(n["metadata"]["name"] for n in nodes)
    outcome = Outcome("running", nodes_expected=expected, labelled=labelled)
    created = False
    try:
        try:
            core.create_namespace(
                namespace_body(name, settings.installation), _request_timeout=timeout
            )
            created = True
            apps.create_namespaced_daemon_set(
                name,
                daemonset_body(name, settings.image, settings.pod_sleep_seconds),
                _request_timeout=timeout,
            )
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            outcome.status = "error"
            outcome.message = explain(exc, "Starting the scan DaemonSet")
            return outcome
        _collect(core, name, settings, owners, outcome, sleep)
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        outcome.status = "error"
        outcome.message = explain(exc, "Reading the scan pods")
    finally:
        if created:
            outcome.cleanup_error = _delete(core, apps, name, timeout)
    outcome.status = _verdict(outcome)
    return outcome


def _collect(
    core: k8s.CoreV1Api,
    namespace: str,
    settings: Settings,
    owners: tuple[iptables.Owner, ...],
    outcome: Outcome,
    sleep: Callable[[float], None],
) -> None:
    """Wait until every expected node's pod has printed its dumps, or the deadline."""
    expected = set(outcome.nodes_expected)
    read: set[str] = set()
    waiting: dict[str, str] = {}
    deadline = time.monotonic() + settings.deadline_seconds
    timeout = settings.request_timeout_seconds
    while True:
        pods = list_all(
            core.list_namespaced_pod,
            namespace=namespace,
            label_selector=f"{SCAN_LABEL}={SCAN_LABEL_VALUE}",
            _request_timeout=timeout,
        )
        for pod in pods:
            node = _pinned_node(pod)
            if node is None or node in read or node not in expected:
                continue
            if (pod.get("status") or {}).get("phase") != "Running":
                waiting[node] = _waiting_reason(pod)
                continue
            limit = settings.max_dump_bytes
            answer = core.read_namespaced_pod_log(
                pod["metadata"]["name"],
                namespace,
                container=CONTAINER,
                limit_bytes=limit + 1,
                _preload_content=False,
                _request_timeout=timeout,
            )
            # kubernetes 36 turns a log into the repr of its bytes: read the raw answer, as
            # bytes (decoded by the analyser, every byte kept).
            log_bytes: bytes = answer.data
            if len(log_bytes) > limit:
                read.add(node)
                waiting.pop(node, None)
                outcome.unread[node] = (
                    f"its scan log is over the limit of {limit:,} bytes "
                    "(WAVEGATE_SCAN_MAX_DUMP_BYTES), so it was not read"
                )
                continue
            dump = read_frames(log_bytes, node)
            del log_bytes
            if not dump.done:
                waiting[node] = "its scan pod had not finished printing"
                continue
            findings, errors, unread = analyse_node(node, dump, owners)
            read.add(node)
            waiting.pop(node, None)
            outcome.findings.extend(findings)  # a rule read blocks, whatever else was unread
            outcome.parse_errors.extend(errors)
            if unread:
                outcome.unread[node] = unread
            else:
                outcome.nodes_read.append(node)
        if read >= expected or time.monotonic() >= deadline:
            break
        sleep(min(settings.poll_seconds, max(0.0, deadline - time.monotonic())))
    for node in sorted(expected - read):
        outcome.unread[node] = waiting.get(node, "no scan pod was created for it")
    outcome.nodes_read.sort()


def _delete(core: k8s.CoreV1Api, apps: k8s.AppsV1Api, name: str, timeout: float) -> str:
    """Delete the DaemonSet and its namespace; "" when done, else what is left behind."""
    problems = []
    for what, delete in (
        (
            f"DaemonSet {name}/{name}",
            lambda: apps.delete_namespaced_daemon_set(
                name, name, propagation_policy="Foreground", _request_timeout=timeout
            ),
        ),
        (f"namespace {name}", lambda: core.delete_namespace(name, _request_timeout=timeout)),
    ):
        try:
            delete()
        except ApiException as exc:
            if exc.status != 404:
                problems.append(explain(exc, f"Deleting {what}"))
        except urllib3.exceptions.HTTPError as exc:
            problems.append(explain(exc, f"Deleting {what}"))
    if problems:
        log.warning("scan %s left objects behind: %s", name, problems)
        return (
            " ".join(problems) + f" Delete the namespace by hand: kubectl delete namespace {name}"
        )
    return ""


@dataclass(frozen=True)
class Leftover:
    """A scan namespace found on a cluster after its scan should have ended."""

    namespace: str
    created: str  # its creationTimestamp, as the API server gave it
    age_seconds: int
    problem: str = ""  # why it could not be deleted; "" when it was


def reap_leftovers(
    kubeconfig: dict[str, Any],
    *,
    installation: str,
    max_age_seconds: float,
    token: Callable[[], str] | None = None,
    timeout: float = 20.0,
    now: Callable[[], float] = time.time,
) -> list[Leftover]:
    """Delete the scan namespaces (and DaemonSets) that `installation` created on one cluster
    more than `max_age_seconds` ago: a worker that died mid-scan left them. Namespaces of other
    installations, younger ones (a scan may still be reading them) and ones already being
    deleted are left alone. Raises CannotConnect, ApiException or urllib3's HTTPError when the
    cluster cannot be listed."""
    if not installation:
        raise ValueError("an installation id is required: without it every scan namespace matches")
    api = connect(kubeconfig, token)
    try:
        core = k8s.CoreV1Api(api)
        apps = k8s.AppsV1Api(api)
        namespaces = list_all(
            core.list_namespace,
            label_selector=(f"{SCAN_LABEL}={SCAN_LABEL_VALUE},{INSTALLATION_LABEL}={installation}"),
            _request_timeout=timeout,
        )
        found = []
        for namespace in namespaces:
            metadata = namespace.get("metadata") or {}
            name = str(metadata.get("name") or "")
            created = str(metadata.get("creationTimestamp") or "")
            if not name.startswith(NAMESPACE_PREFIX) or metadata.get("deletionTimestamp"):
                continue
            try:
                born = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ")
            except ValueError:
                continue
            age = now() - born.replace(tzinfo=datetime.UTC).timestamp()
            if age <= max_age_seconds:
                continue
            problem = _delete(core, apps, name, timeout)
            found.append(Leftover(name, created, int(age), problem))
        return found
    finally:
        api.close()


def _verdict(outcome: Outcome) -> str:
    if outcome.status == "error":
        return "error"
    messages = []
    # AKS's own label on a read node whose dump shows nothing Wavegate calls user-installed
    # (an administrator's extension may accept what AKS does not): AKS still refuses.
    flagged = {f.node for f in outcome.findings}
    overruled = [n for n in outcome.labelled if n in outcome.nodes_read and n not in flagged]
    if overruled:
        messages.append(
            f"AKS's own check flags {', '.join(overruled[:10])}"
            + (f" and {len(overruled) - 10} more" if len(overruled) > 10 else "")
            + " (CiliumNode label kubernetes.azure.com/user-iptables-rules=true) although "
            "Wavegate finds no user-installed rule there that its owner table does not accept. "
            "Either the rules were removed a short while ago and AKS's iptables monitor has not "
            "checked again yet (it does every few minutes: scan again shortly), or an "
            "accepted-owner extension covers rules AKS does not accept. AKS refuses BpfVeth "
            "until the label clears."
        )
    if outcome.unread:
        messages.append(_unread_message(outcome.unread))
    outcome.message = " ".join(messages)
    if outcome.findings or overruled:
        return "blocked"
    return "incomplete" if outcome.unread else "clean"


def _unread_message(unread: dict[str, str]) -> str:
    names = sorted(unread)
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return (
        f"{len(names)} node{'s' if len(names) != 1 else ''} not read ({shown}): "
        f"{unread[names[0]]}. Fix what keeps the scan pod off the node, then scan again."
    )


def unique_name(scan_id: int) -> str:
    """The namespace and DaemonSet name of one scan."""
    return f"wavegate-scan-{scan_id}"
