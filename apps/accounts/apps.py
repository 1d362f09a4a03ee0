from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"

    def ready(self) -> None:
        import advisor.checks  # noqa: F401  (registers the deployment checks)
