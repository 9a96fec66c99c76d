from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        # signals first: a failed sign-in is recorded before the lock-out it causes.
        from audit import signals  # noqa: F401, I001  (connects sign-in/sign-out recording)
        from audit import lockouts  # noqa: F401  (connects lock-out recording)
        from audit import access_log  # noqa: F401  (connects user and group change recording)
        from audit import attempts  # noqa: F401  (registers the summaries' beat task)
