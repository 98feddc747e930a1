from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Partner API (shared parts)"

    def ready(self) -> None:
        from api.fields import strict_strings_install

        strict_strings_install()
