"""The form of the API tokens page."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator

from api import tokens


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, for example “deploy pipeline”.")
    days = forms.IntegerField(label="Valid for (days)", min_value=1)
    read_only = forms.BooleanField(
        required=False,
        label="Read-only",
        help_text="It may read everything your roles may read, and change nothing.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        most = settings.WAVEGATE_API_TOKEN_MAX_DAYS
        days = self.fields["days"]
        days.initial = tokens.default_days()
        days.validators.append(MaxValueValidator(most))
        days.help_text = f"At most {most} days."
        days.widget.attrs["max"] = most
