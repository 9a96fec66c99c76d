"""Cutting a plan into waves (rollout/planning.py): sizes, order, exclusions, bad specs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout.planning import (
    BPFVETH,
    NONE,
    Candidate,
    PlanError,
    Selection,
    cut,
    parse_waves,
)

RINGS = ("canary", "early", "broad")


def fleet(n: int, **overrides: object) -> list[Candidate]:
    regions = ("westeurope", "eastus", "northeurope")
    return [
        Candidate(
            id=i,
            name=f"aks-{i:03d}",
            subscription_id=f"sub-{i % 2}",
            region=regions[i % 3],
            ring=RINGS[i % 3],
            tags={"team": "pay" if i % 4 == 0 else "ads"},
            eligible=True,
            **overrides,
        )
        for i in range(n)
    ]


def sizes(waves: list[list[Candidate]]) -> list[int]:
    return [len(w) for w in waves]


def test_sizes_are_cumulative_and_rounded_up():
    plan = cut(fleet(60), Selection(), "1, 5%, 25%, 100%")

    # 1 cluster; then to ceil(5% of 60) = 3; then to 15; then the rest.
    assert sizes(plan.waves) == [1, 2, 12, 45]
    assert plan.cluster_count == 60


def test_the_issues_example_over_60_clusters():
    assert sizes(cut(fleet(60), Selection(), "1, 10%, 50%, 100%").waves) == [1, 5, 24, 30]


def test_empty_waves_are_dropped():
    # 5% of 10 rounds up to 1, which the first wave already reached.
    plan = cut(fleet(10), Selection(), "1, 5%, 25%, 100%")

    assert sizes(plan.waves) == [1, 2, 7]


def test_waves_go_ring_by_ring_then_region_then_name():
    plan = cut(fleet(12), Selection(), "1, 100%", ring_order=RINGS)
    order = [c for wave in plan.waves for c in wave]

    assert [c.ring for c in order] == ["canary"] * 4 + ["early"] * 4 + ["broad"] * 4
    canary = order[:4]
    assert [(c.region, c.name) for c in canary] == sorted((c.region, c.name) for c in canary)
    assert plan.waves[0][0].ring == "canary"


def test_rings_not_in_the_configured_order_come_after_and_no_ring_comes_last():
    clusters = [
        Candidate(1, "a", "s", "r", "", {}, True),
        Candidate(2, "b", "s", "r", "zeta", {}, True),
        Candidate(3, "c", "s", "r", "canary", {}, True),
        Candidate(4, "d", "s", "r", "alpha", {}, True),
    ]
    order = [c.name for c in cut(clusters, Selection(), "100%", ring_order=("canary",)).waves[0]]

    assert order == ["c", "d", "b", "a"]


def test_ineligible_blocked_claimed_and_done_clusters_are_set_apart_with_reasons():
    clusters = fleet(6)
    clusters[1] = Candidate(
        1, "aks-001", "sub-1", "eastus", "early", {}, False, ("Kubernetes 1.31 is below 1.33",)
    )
    clusters[2] = Candidate(
        2, "aks-002", "sub-0", "northeurope", "broad", {}, True, preflight="blocked"
    )
    clusters[3] = Candidate(
        3, "aks-003", "sub-1", "westeurope", "canary", {}, True, claimed_by="wave-x"
    )
    clusters[4] = Candidate(
        4, "aks-004", "sub-0", "eastus", "early", {}, True, acceleration_mode=BPFVETH
    )

    plan = cut(clusters, Selection(), "1, 100%")

    assert sorted(c.id for w in plan.waves for c in w) == [0, 5]
    reasons = {e.candidate.id: e.reason for e in plan.excluded}
    assert reasons == {
        1: "not eligible: Kubernetes 1.31 is below 1.33",
        2: "blocked: its latest preflight scan found user-installed iptables rules",
        3: "in plan 'wave-x', which is still active",
        4: "already at BpfVeth",
    }


def test_a_rollback_plan_selects_only_clusters_at_bpfveth_and_ignores_preflight():
    clusters = fleet(4)
    clusters[0] = Candidate(
        0, "aks-000", "s", "r", "canary", {}, False, acceleration_mode=BPFVETH, preflight="blocked"
    )
    clusters[1] = Candidate(1, "aks-001", "s", "r", "canary", {}, True, acceleration_mode=BPFVETH)

    plan = cut(clusters, Selection(), "100%", goal=NONE)

    assert sorted(c.id for w in plan.waves for c in w) == [0, 1]
    assert {e.reason for e in plan.excluded} == {"not at BpfVeth: nothing to roll back"}


def test_a_rollback_plan_sets_stopped_clusters_apart_saying_to_start_them():
    clusters = [
        Candidate(0, "aks-000", "s", "r", "canary", {}, True, acceleration_mode=BPFVETH),
        Candidate(1, "aks-001", "s", "r", "canary", {}, True, acceleration_mode=BPFVETH,
                  stopped=True),
    ]  # fmt: skip

    plan = cut(clusters, Selection(), "100%", goal=NONE)

    assert [c.id for w in plan.waves for c in w] == [0]
    (apart,) = plan.excluded
    assert apart.candidate.id == 1
    assert apart.reason.startswith("stopped: AKS refuses to change a stopped cluster")


def test_the_selection_filters_by_every_criterion():
    clusters = fleet(24)
    selection = Selection(
        subscriptions=frozenset({"sub-0"}),
        regions=frozenset({"westeurope", "eastus"}),
        rings=frozenset({"canary", "early"}),
        tags={"team": "pay"},
    )

    chosen = [c for w in cut(clusters, selection, "100%").waves for c in w]

    assert chosen
    assert all(selection.matches(c) for c in chosen)
    assert {c.id for c in chosen} == {
        c.id
        for c in clusters
        if c.subscription_id == "sub-0"
        and c.region in {"westeurope", "eastus"}
        and c.ring in {"canary", "early"}
        and c.tags["team"] == "pay"
    }


def test_names_match_exactly_or_as_globs():
    clusters = fleet(30)
    chosen = cut(clusters, Selection(names=("aks-00?", "aks-020")), "100%").waves[0]

    assert sorted(c.name for c in chosen) == [f"aks-00{i}" for i in range(10)] + ["aks-020"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("", "Give the waves"),
        ("1, 5%, 25%", "must be 100%"),
        ("1, five, 100%", "neither a number"),
        ("0, 100%", "whole number"),
        ("1.5, 100%", "whole number"),
        ("1, 150%", "at most 100%"),
        ("1, 0%, 100%", "above 0%"),
        ("10, 5, 100%", "cumulative"),
    ],
)
def test_a_bad_wave_specification_says_what_to_change(spec, says):
    with pytest.raises(PlanError, match=says):
        cut(fleet(40), Selection(), spec)


def test_an_unknown_goal_is_refused():
    with pytest.raises(PlanError, match="BpfVeth or None"):
        cut(fleet(3), Selection(), "100%", goal="Turbo")


def test_a_selection_that_matches_nothing_gives_no_waves():
    assert cut(fleet(5), Selection(regions=frozenset({"mars"})), "1, 100%").waves == []


@given(
    n=st.integers(min_value=0, max_value=400),
    steps=st.lists(
        st.one_of(st.integers(1, 500).map(str), st.integers(1, 100).map(lambda p: f"{p}%")),
        max_size=6,
    ),
)
def test_waves_always_partition_the_chosen_clusters_in_order(n, steps):
    spec = ", ".join([*steps, "100%"])
    totals = [s.total(n) for s in parse_waves(spec)]
    if any(later < max(totals[:i]) for i, later in enumerate(totals) if i):
        with pytest.raises(PlanError, match="cumulative"):
            cut(fleet(n), Selection(), spec)
        return
    plan = cut(fleet(n), Selection(), spec)
    flat = [c for w in plan.waves for c in w]
    expected_order = sorted(fleet(n), key=lambda c: (c.ring, c.region, c.name))
    assert [c.id for c in flat] == [c.id for c in expected_order]
    assert all(plan.waves)  # no empty wave
    ends = [sum(sizes(plan.waves)[: i + 1]) for i in range(len(plan.waves))]
    assert ends == sorted({t for t in totals if t})
    assert ends[-1:] == ([n] if n else [])


def test_a_cluster_that_reads_bpfveth_after_a_failed_change_is_not_already_at_bpfveth():
    # ARM keeps the target mode after a failed enable: the cluster reads BpfVeth, Failed.
    clusters = [
        Candidate(0, "aks-000", "s", "r", "canary", {}, True, acceleration_mode=BPFVETH),
        Candidate(1, "aks-001", "s", "r", "canary", {}, True, acceleration_mode=BPFVETH,
                  provisioning_state="Failed"),
    ]  # fmt: skip

    plan = cut(clusters, Selection(), "100%", goal=BPFVETH)

    assert [c.id for w in plan.waves for c in w] == [1]  # sent again: it reconciles
    assert [(e.candidate.id, e.reason) for e in plan.excluded] == [(0, "already at BpfVeth")]
