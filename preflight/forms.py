"""The preflight pages' forms: an administrator's extension of the iptables owner table, and
retiring one."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from preflight.actions import IPTABLES_TABLES

MATCHERS = ("chain", "chain_prefix", "comment", "line_regex")


class AcceptedOwnerForm(forms.Form):
    """An administrator's extension of the owner table, checked before the action sees it."""

    name = forms.CharField(
        max_length=100, help_text="Who installs these rules, as the page will name them."
    )
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why these rules are safe to accept with eBPF host routing. Shown here and "
        "kept in the audit log.",
    )
    tables = forms.CharField(
        max_length=100,
        required=False,
        help_text=f"Comma-separated, from {', '.join(IPTABLES_TABLES)}; blank for every table.",
    )
    chain = forms.CharField(
        label="Exact chain",
        max_length=64,
        required=False,
        help_text="Rules in this chain or jumping to it.",
    )
    chain_prefix = forms.CharField(
        max_length=64,
        required=False,
        help_text="Rules in, or jumping to, a chain whose name starts with this. With an exact "
        "chain too, either will do.",
    )
    comment = forms.CharField(
        label="Comment contains",
        max_length=200,
        required=False,
        help_text="Rules with an iptables comment (-m comment) containing this text.",
    )
    line_regex = forms.CharField(
        label="Full-line regular expression",
        max_length=500,
        required=False,
        help_text="A Python regular expression the whole rule line must match, "
        "e.g. -A INPUT -p tcp --dport 9100 -j ACCEPT",
    )

    def clean_tables(self) -> str:
        names = [t.strip().lower() for t in self.cleaned_data["tables"].split(",") if t.strip()]
        unknown = [t for t in names if t not in IPTABLES_TABLES]
        if unknown:
            raise forms.ValidationError(
                f"Not an iptables table: {', '.join(unknown)}. Use {', '.join(IPTABLES_TABLES)}, "
                "or leave blank for every table."
            )
        return ",".join(dict.fromkeys(names))

    def clean_line_regex(self) -> str:
        pattern: str = self.cleaned_data["line_regex"]
        try:
            re.compile(pattern)
        except re.error as exc:
            raise forms.ValidationError(
                f"This is not a regular expression Python can read: {exc}."
            ) from exc
        return pattern

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if not any(cleaned.get(m) or m in self.errors for m in MATCHERS):
            raise forms.ValidationError(
                "Say which rules to accept: fill in at least one of exact chain, chain prefix, "
                "comment contains or full-line regular expression."
            )
        return cleaned


class RetireOwnerForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        error_messages={"required": "Say why you retire it: the reason goes in the audit log."},
    )
