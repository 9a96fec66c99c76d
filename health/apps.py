from django.apps import AppConfig
from django.core import checks

from health import deployment


class HealthConfig(AppConfig):
    name = "health"
    verbose_name = "Service health"

    def ready(self) -> None:
        # Deploy checks: `manage.py check --deploy`, which compose's migrate runs before web,
        # worker and beat may start; the demo, the tests and other commands skip them.
        checks.register(deployment.scan_image_pinned, checks.Tags.security, deploy=True)
        checks.register(deployment.audit_anchored, checks.Tags.security, deploy=True)
