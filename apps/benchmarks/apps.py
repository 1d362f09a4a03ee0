from django.apps import AppConfig


class BenchmarksConfig(AppConfig):
    name = "apps.benchmarks"

    def ready(self) -> None:
        # Connects the Celery worker_ready/worker_shutdown handlers that register benchmark workers; they only
        # fire inside a worker process, so the web process is unaffected.
        from apps.benchmarks import worker  # noqa: F401
