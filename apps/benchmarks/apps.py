from django.apps import AppConfig


class BenchmarksConfig(AppConfig):
    name = "apps.benchmarks"
    # The Celery worker_ready/worker_shutdown handlers that register benchmark workers (apps/benchmarks/worker.py)
    # are connected by the worker itself, through CELERY_IMPORTS: other processes never import Celery for them.
