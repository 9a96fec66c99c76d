"""The rollout app's models: plans, their waves and targets (one per cluster), approvals, and
the claims that keep a cluster in at most one active plan. Their states and moves are in
rollout/choices.py."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from config.fields import JSONField
from fleet.models import Cluster
from rollout.choices import Authorship, Decision, Goal, PlanStatus, TargetStatus, WaveStatus


class RolloutPermissions(models.Model):
    """Carries the rollout app's permissions, which roles hold; it has no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_plans", "Can see rollout plans and waves"),
            ("manage_plans", "Can create, submit, pause, resume, abort and roll back plans"),
            ("approve_waves", "Can approve or reject a wave of another person's plan"),
            ("emergency_stop", "Can pause every running plan at once"),
        ]

    def __str__(self) -> str:
        return "rollout permissions"


class RolloutPlan(models.Model):
    """A named change of acceleration mode over a selection of clusters, cut into waves."""

    name = models.CharField(max_length=200)
    goal = models.CharField(max_length=16, choices=Goal.choices, default=Goal.BPFVETH)
    # {"subscriptions": [...], "regions": [...], "rings": [...], "tags": {k: v}, "names": [...]}
    selection = JSONField(default=dict, blank=True)
    wave_spec = models.CharField(max_length=200, default="1, 5%, 25%, 100%")
    concurrency = models.PositiveIntegerField(default=10)
    # Failed targets a wave tolerates before the plan pauses: a count ("0", "3") or "10%".
    failure_budget = models.CharField(max_length=16, default="0")
    soak_minutes = models.PositiveIntegerField(default=30)
    respect_maintenance_windows = models.BooleanField(default=True)
    approvals_needed = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(
        max_length=16, choices=PlanStatus.choices, default=PlanStatus.DRAFT, db_index=True
    )
    # sha256 of the plan's content and its frozen cluster lists; approvals are bound to it.
    content_hash = models.CharField(max_length=64, blank=True)
    paused_reason = models.TextField(blank=True)
    # Set apart when submitted, frozen with the waves: [{"cluster", "name", "reason"}].
    excluded = JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        default_permissions = ()

    def __str__(self) -> str:
        return self.name

    def authorship(self) -> dict[int, str]:
        """Its authors by user id, each with what they did first (created, edited, submitted)."""
        found: dict[int, str] = {}
        for user_id, did in self.authors.order_by("at", "pk").values_list("user_id", "did"):
            found.setdefault(user_id, did)
        return found


class Wave(models.Model):
    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="waves")
    index = models.PositiveIntegerField()  # 1-based
    status = models.CharField(
        max_length=20, choices=WaveStatus.choices, default=WaveStatus.PENDING, db_index=True
    )
    paused_from = models.CharField(max_length=20, blank=True)  # where a paused wave returns
    approvals_needed = models.PositiveSmallIntegerField(default=1)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    soak_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["plan", "index"]
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(fields=["plan", "index"], name="rollout_wave_unique")
        ]

    def __str__(self) -> str:
        return f"{self.plan} wave {self.index}"

    def valid_approvals(self, plan_hash: str) -> int:
        """Approvals that count: given for the plan as it is now (its content hash)."""
        return self.approvals.filter(decision=Decision.APPROVE, plan_hash=plan_hash).count()

    def deciders(self, plan_hash: str) -> set[int]:
        """Who has decided on this wave (approved or rejected) for the plan as it is now."""
        return set(self.approvals.filter(plan_hash=plan_hash).values_list("user_id", flat=True))


class RolloutTarget(models.Model):
    """One cluster in one plan: where the engine is with it, and what Azure said."""

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="targets")
    wave = models.ForeignKey(Wave, on_delete=models.CASCADE, related_name="targets")
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField()  # order within the plan (ring, region, name)
    status = models.CharField(
        max_length=20, choices=TargetStatus.choices, default=TargetStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    continuation_token = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)  # x-ms-client-request-id
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    profile_before = JSONField(default=dict, blank=True)
    profile_after = JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    verifying_since = models.DateTimeField(null=True, blank=True)  # Azure said done; nodes next
    finished_at = models.DateTimeField(null=True, blank=True)
    # Since when it is in its status: an in-flight status has a deadline counted from here
    # (rollout/engine.py `deadline_of`). Empty on rows older than the field: then updated_at.
    status_since = models.DateTimeField(null=True, blank=True)
    # While its wave soaks: when its nodes were last read, what that found that the plan paused
    # for (keys "node/NotReady", "node/<warning reason>"), and what operators acknowledged by
    # resuming (not paused for again).
    checked_at = models.DateTimeField(null=True, blank=True)
    # When Azure accepted the change (PUT answered): its nodes must come back from a reimage
    # after this to count as changed.
    change_sent_at = models.DateTimeField(null=True, blank=True)
    # Times the engine sent the same change again by itself after Azure's operation ended
    # Failed with the target mode (AKS's advice for a failed cluster): once per operator retry.
    resent = models.PositiveSmallIntegerField(default=0)
    # Since when Azure keeps refusing with something that passes (another operation running,
    # iptables rules its monitor has not re-checked): the engine retries, with back-off.
    retrying_since = models.DateTimeField(null=True, blank=True)
    # A preflight waiting for AKS's iptables monitor to clear its label takes only scans
    # finished after this.
    rescan_after = models.DateTimeField(null=True, blank=True)
    soak_findings = JSONField(default=list, blank=True)
    acknowledged = JSONField(default=list, blank=True)
    # When the engine step queued for it is due; empty while none is queued (a step running, or
    # nothing to do). The reconciler sends a step again only when none is queued or one is long
    # overdue (lost with a worker), so a cluster never has two chains of steps.
    next_step_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["plan", "position"]
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(fields=["plan", "cluster"], name="rollout_target_unique")
        ]

    def __str__(self) -> str:
        return f"{self.plan} / {self.cluster_id}"

    def reread(self) -> None:
        """Read its row again, keeping the cluster already read with it (a target never
        changes cluster), where refresh_from_db alone would read the cluster again later."""
        field = RolloutTarget.cluster.field
        cluster = field.get_cached_value(self) if field.is_cached(self) else None
        self.refresh_from_db()
        if cluster is not None:
            field.set_cached_value(self, cluster)


class ClusterClaim(models.Model):
    """A cluster belongs to at most one active plan: the row exists while the plan is active,
    and the unique cluster column refuses a second claim."""

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="claim")
    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="claims")

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.cluster_id} in {self.plan_id}"


class Approval(models.Model):
    wave = models.ForeignKey(Wave, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField()
    plan_hash = models.CharField(max_length=64)  # the plan's content hash when given
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["wave", "created_at"]
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(fields=["wave", "user"], name="rollout_approval_once")
        ]

    def __str__(self) -> str:
        return f"{self.decision} of {self.wave} by {self.user_id}"


class PlanAuthor(models.Model):
    """Someone who created, edited or submitted a plan, and which version (content hash) that
    produced or left: every author of a plan is barred from deciding its waves, since a
    version carries what each earlier one had (rollout/access.py)."""

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="authors")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    did = models.CharField(max_length=16, choices=Authorship.choices)
    # The version submitted (for SUBMITTED) or edited away (EDITED of a submitted plan).
    content_hash = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["plan", "at", "pk"]
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.user_id} {self.did} {self.plan_id}"


class EmergencyStop(models.Model):
    """An emergency stop: every plan paused at once, and none resumed or submitted until
    someone lifts it (rollout/emergency.py). In force while `lifted_at` is empty; the rows
    lifted are its history. Lifting resumes nothing: operators resume each plan themselves."""

    started_at = models.DateTimeField()
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    lift_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        default_permissions = ()

    def __str__(self) -> str:
        return f"emergency stop of {self.started_at:%Y-%m-%d %H:%M}"

    @classmethod
    def in_force(cls) -> EmergencyStop | None:
        return cls.objects.filter(lifted_at__isnull=True).select_related("started_by").first()
