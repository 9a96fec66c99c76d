from django.apps import AppConfig
from django.core import checks

from rollout import checks as rollout_checks


class RolloutConfig(AppConfig):
    name = "rollout"
    verbose_name = "Rollout plans"

    def ready(self) -> None:
        # Every start (`manage.py check`, runserver, migrate): a destination that cannot be
        # delivered to is named before any announcement is lost to it.
        checks.register(rollout_checks.notify_destinations)
