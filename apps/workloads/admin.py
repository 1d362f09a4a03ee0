from django.contrib import admin

from apps.workloads.models import Workload


@admin.register(Workload)
class WorkloadAdmin(admin.ModelAdmin[Workload]):
    list_display = ["name", "team", "model", "ttft_p95_ms", "itl_p95_ms", "updated_at"]
    list_filter = ["team", "model"]
    search_fields = ["name", "team__name"]
    raw_id_fields = ["created_by"]
