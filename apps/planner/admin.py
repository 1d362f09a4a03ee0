from django.contrib import admin

from apps.planner.models import Recommendation


@admin.register(Recommendation)
class RecommendationAdmin(admin.ModelAdmin[Recommendation]):
    list_display = ["pk", "workload", "status", "progress", "created_at", "finished_at"]
    list_filter = ["status"]
    search_fields = ["workload__name"]
    raw_id_fields = ["workload", "requested_by"]
    # The stored plan is the planner's output: read it here, change it never.
    readonly_fields = ["inputs", "result", "best_option", "catalog_version", "measured_points", "error"]
