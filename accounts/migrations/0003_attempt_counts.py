"""Counts of failed sign-ins and refused requests, so that a flood of them is summarised in the
audit log rather than recorded one by one."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_accounts_permissions"),
    ]

    operations = [
        migrations.CreateModel(
            name="AttemptTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("sign_in_failure", "Failed sign-in"),
                            ("refusal", "Refused request"),
                        ],
                        max_length=20,
                    ),
                ),
                ("window", models.DateTimeField(help_text="the minute's start")),
                ("username", models.CharField(blank=True, max_length=150)),
                ("address", models.CharField(blank=True, max_length=45)),
                ("attempts", models.PositiveIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("kind", "window", "username", "address"),
                        name="accounts_attempt_tally_once",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="AttemptWindow",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("sign_in_failure", "Failed sign-in"),
                            ("refusal", "Refused request"),
                        ],
                        max_length=20,
                    ),
                ),
                ("window", models.DateTimeField(help_text="the minute's start")),
                ("scope", models.CharField(blank=True, max_length=200)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("recorded", models.PositiveIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("kind", "window", "scope"), name="accounts_attempt_window_once"
                    )
                ],
            },
        ),
    ]
