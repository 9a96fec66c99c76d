"""The plan form (new and edit): what the operator types, turned into the fields
`actions.create_plan` and `actions.edit_plan` take and the selection `planning.cut` previews."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from fleet.models import Cluster
from rollout.choices import Goal
from rollout.models import RolloutPlan


class CheckboxGroup(forms.CheckboxSelectMultiple):
    """One checkbox a choice, which a mouse alone or a keyboard alone can operate (a multiple
    <select> needs Ctrl-click). Rendered in Python, not through a template per option: Django's
    costs about 0.15 ms a checkbox, 30 ms for the 200 subscriptions of a large fleet. The page
    puts it in a <fieldset> whose <legend> names it (`use_fieldset`)."""

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        chosen = {str(v) for v in ([value] if isinstance(value, str) else value or ())}
        group = self.build_attrs(self.attrs, attrs).get("id") or f"id_{name}"
        boxes = format_html_join(
            "",
            '<li><label for="{0}_{1}"><input type="checkbox" name="{2}" value="{3}" '
            'id="{0}_{1}"{4}> {5}</label></li>',
            (
                (group, n, name, choice, " checked" if str(choice) in chosen else "", label)
                for n, (choice, label) in enumerate(self.choices)
            ),
        )
        return format_html('<ul class="choices" id="{}">{}</ul>', group, boxes)


def _inventory_choices() -> tuple[
    list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]
]:
    live = Cluster.objects.filter(removed_at__isnull=True).order_by()
    subscriptions = [
        (sub_id, f"{name} ({sub_id})" if name else sub_id)
        for sub_id, name in live.values_list("subscription__subscription_id", "subscription__name")
        .distinct()
        .order_by("subscription__name", "subscription__subscription_id")
    ]
    regions = [
        (r, r) for r in live.values_list("location", flat=True).distinct().order_by("location")
    ]
    rings = [
        (r, r or "(no ring)")
        for r in live.values_list("ring", flat=True).distinct().order_by("ring")
    ]
    return subscriptions, regions, rings


class PlanForm(forms.Form):
    name = forms.CharField(max_length=200)
    goal = forms.ChoiceField(choices=Goal.choices, initial=Goal.BPFVETH)
    subscriptions = forms.MultipleChoiceField(
        required=False, widget=CheckboxGroup, help_text="None chosen: every subscription."
    )
    regions = forms.MultipleChoiceField(
        required=False, widget=CheckboxGroup, help_text="None chosen: every region."
    )
    rings = forms.MultipleChoiceField(
        required=False, widget=CheckboxGroup, help_text="None chosen: every ring."
    )
    tags = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One key=value a line; a cluster must carry every one.",
    )
    names = forms.CharField(
        label="Name patterns",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One name or shell-style pattern (aks-prod-*) a line; any may match.",
    )
    wave_spec = forms.CharField(
        label="Waves",
        max_length=200,
        initial="1, 5%, 25%, 100%",
        help_text=(
            "Cumulative clusters changed after each wave: counts or percentages, ending at 100%."
        ),
    )
    concurrency = forms.IntegerField(min_value=1, max_value=1000, initial=10)
    failure_budget = forms.CharField(
        max_length=16, initial="0", help_text="Failed clusters a wave tolerates: 0, 3 or 10%."
    )
    soak_minutes = forms.IntegerField(min_value=0, max_value=7 * 24 * 60)
    respect_maintenance_windows = forms.BooleanField(
        required=False,
        help_text=(
            "Change each cluster only inside its maintenance window, waiting for it to open. "
            "Unchecked, clusters whose node disruption policy (AllowDuringMaintenanceWindow) "
            "lets AKS change them only inside a window closed now are set apart."
        ),
    )
    approvals_needed = forms.IntegerField(min_value=1, max_value=10, initial=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read per form, not at import: the installation chooses them (the demo's are short).
        windows = settings.WAVEGATE_PLAN_DEFAULT_RESPECT_WINDOWS
        self.fields["soak_minutes"].initial = settings.WAVEGATE_PLAN_DEFAULT_SOAK_MINUTES
        self.fields["respect_maintenance_windows"].initial = windows
        subscriptions, regions, rings = _inventory_choices()
        self.fields["subscriptions"].choices = subscriptions  # type: ignore[attr-defined]
        self.fields["regions"].choices = regions  # type: ignore[attr-defined]
        self.fields["rings"].choices = rings  # type: ignore[attr-defined]

    def clean_tags(self) -> dict[str, str]:
        tags: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["tags"].splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(
                    f"Line {number} ({line!r}) is not key=value, for example env=prod."
                )
            tags[key.strip()] = value.strip()
        return tags

    def clean_names(self) -> list[str]:
        names = [line.strip() for line in self.cleaned_data["names"].splitlines() if line.strip()]
        most, longest = (
            settings.WAVEGATE_PLAN_MAX_PATTERNS,
            settings.WAVEGATE_PLAN_MAX_PATTERN_LENGTH,
        )
        if len(names) > most:
            raise forms.ValidationError(
                f"{len(names):,} name patterns: a plan takes at most {most:,}. Use shell-style "
                "patterns (aks-prod-*) or tags to select many clusters at once."
            )
        globs = [name for name in names if any(ch in name for ch in "*?[")]
        if len(globs) > settings.WAVEGATE_PLAN_MAX_GLOBS:
            raise forms.ValidationError(
                f"{len(globs):,} lines hold a wildcard (* ? [): a plan takes at most "
                f"{settings.WAVEGATE_PLAN_MAX_GLOBS} (exact names, up to {most:,}, are not "
                "limited so). Merge patterns (aks-prod-*), or select by tags."
            )
        for number, name in enumerate(names, 1):
            if len(name) > longest:
                raise forms.ValidationError(
                    f"Pattern {number} is {len(name):,} characters long: at most {longest} "
                    "(a cluster's name has at most 63)."
                )
        return names

    def selection(self) -> dict[str, Any]:
        """The plan's selection as RolloutPlan.selection stores it (call after is_valid)."""
        data = self.cleaned_data
        return {
            "subscriptions": list(data["subscriptions"]),
            "regions": list(data["regions"]),
            "rings": list(data["rings"]),
            "tags": data["tags"],
            "names": data["names"],
        }

    def plan_fields(self) -> dict[str, Any]:
        """The keyword arguments of actions.create_plan (call after is_valid)."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "goal": data["goal"],
            "selection": self.selection(),
            "wave_spec": data["wave_spec"],
            "concurrency": data["concurrency"],
            "failure_budget": data["failure_budget"],
            "soak_minutes": data["soak_minutes"],
            "respect_maintenance_windows": data["respect_maintenance_windows"],
            "approvals_needed": data["approvals_needed"],
        }


def initial_of(plan: RolloutPlan) -> dict[str, Any]:
    """The form's fields filled in with a plan's settings, as the operator would type them."""
    selection = plan.selection or {}
    return {
        "name": plan.name,
        "goal": plan.goal,
        "subscriptions": list(selection.get("subscriptions") or ()),
        "regions": list(selection.get("regions") or ()),
        "rings": list(selection.get("rings") or ()),
        "tags": "\n".join(f"{k}={v}" for k, v in (selection.get("tags") or {}).items()),
        "names": "\n".join(selection.get("names") or ()),
        "wave_spec": plan.wave_spec,
        "concurrency": plan.concurrency,
        "failure_budget": plan.failure_budget,
        "soak_minutes": plan.soak_minutes,
        "respect_maintenance_windows": plan.respect_maintenance_windows,
        "approvals_needed": plan.approvals_needed,
    }


class NotAPlan(ValueError):
    """A plan given as data (API, YAML file) whose shape is wrong before any field's check."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


_LISTS = ("subscriptions", "regions", "rings")


# Every character str.splitlines() ends a line at: the form reads its lists line by line, so one
# of these inside an item would make it two (a name widening the selection, a tag injected).
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def _one_line(text: str, field: str) -> str:
    """A single item of a list or map, which the form reads back as one line."""
    if not _LINE_BREAKS.isdisjoint(text):
        raise NotAPlan(f"{field}: one item a line; {text[:60]!r} holds a line break.", field)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NotAPlan(f"{field}: {text[:60]!r} is not text (a lone surrogate).", field) from exc
    return text


def _lines(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return "\n".join(_one_line(v, field) for v in value)
    raise NotAPlan(f"{field} is a list of strings.", field)


def _tag_lines(tags: dict[Any, Any]) -> str:
    lines = []
    seen: set[str] = set()
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str | int | float):
            raise NotAPlan("tags maps each tag's name to its value, both strings.", "tags")
        if "=" in key or not key.strip():
            raise NotAPlan(f"tags: {key[:60]!r} is not a tag's name (empty, or holds =).", "tags")
        # The form trims each name: " env" and "env" would be one tag, the last one winning.
        if key.strip() in seen:
            raise NotAPlan(f"tags: {key.strip()[:60]!r} is given twice.", "tags")
        seen.add(key.strip())
        lines.append(f"{_one_line(key, 'tags')}={_one_line(str(value), 'tags')}")
    return "\n".join(lines)


def form_from(data: Any, *, base: RolloutPlan | None = None) -> PlanForm:
    """The plan form filled in from data (JSON from the API, a YAML plan file): the same form,
    and so the same checks and words, as the page. `tags` is a mapping (or "key=value" lines),
    `names` and the selection's lists are lists of strings. With `base`, the fields not given
    keep that plan's settings (an edit)."""
    if not isinstance(data, dict):
        raise NotAPlan("A plan is a mapping of its fields (name, wave_spec, …).")
    known = set(PlanForm.base_fields)
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise NotAPlan(
            f"Unknown plan field(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}.",
            unknown[0],
        )
    merged: dict[str, Any] = dict(initial_of(base)) if base is not None else {}
    if base is None:
        merged["soak_minutes"] = settings.WAVEGATE_PLAN_DEFAULT_SOAK_MINUTES
        merged["respect_maintenance_windows"] = settings.WAVEGATE_PLAN_DEFAULT_RESPECT_WINDOWS
        for name in ("goal", "wave_spec", "concurrency", "failure_budget", "approvals_needed"):
            merged[name] = PlanForm.base_fields[name].initial
    merged.update(data)
    for field in _LISTS:
        value = merged.get(field) or []
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise NotAPlan(f"{field} is a list of strings.", field)
        merged[field] = list(value)
    tags = merged.get("tags") or ""
    if isinstance(tags, dict):
        tags = _tag_lines(tags)
    merged["tags"] = _lines(tags, "tags")
    merged["names"] = _lines(merged.get("names") or "", "names")
    for field in ("name", "goal", "wave_spec", "failure_budget"):
        value = merged.get(field)
        if value is not None and not isinstance(value, str | int):
            raise NotAPlan(f"{field} is a string.", field)
        if value is not None:
            merged[field] = str(value)
    for field in ("concurrency", "soak_minutes", "approvals_needed"):
        value = merged.get(field)
        if isinstance(value, bool) or (value is not None and not isinstance(value, int)):
            raise NotAPlan(f"{field} is a whole number.", field)
    windows = merged.get("respect_maintenance_windows")
    if not isinstance(windows, bool):
        raise NotAPlan(
            "respect_maintenance_windows is true or false.", "respect_maintenance_windows"
        )
    # A form's unchecked box is an absent field; the data says false.
    if not windows:
        merged.pop("respect_maintenance_windows")
    return PlanForm(merged)
