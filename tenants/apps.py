from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Creators"

    def ready(self) -> None:
        # Connects the signals that empty the routing cache when this process changes routing.
        from tenants import routing  # noqa: F401
