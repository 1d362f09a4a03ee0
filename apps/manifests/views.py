from __future__ import annotations

import re

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import MarkdownLexer, YamlLexer

from apps.manifests.forms import BundleChoicesForm
from apps.manifests.services import BundleUnavailable, manifest_bundle_build, manifest_bundle_zip
from apps.planner.selectors import recommendations_visible_to

_FORMATTER = HtmlFormatter(nowrap=True)


def _highlighted(path: str, text: str) -> str:
    lexer = MarkdownLexer() if path.endswith(".md") else YamlLexer()
    # Pygments escapes the source text; its output is safe HTML spans.
    return mark_safe(str(highlight(text, lexer, _FORMATTER)))


@require_GET
@login_required
def bundle_preview(request: HttpRequest, recommendation_id: int, rank: int) -> HttpResponse:
    recommendation = get_object_or_404(recommendations_visible_to(user=request.user), pk=recommendation_id)
    form = BundleChoicesForm(request.GET or None)
    files: list[dict[str, str]] = []
    error = ""
    problems: list[str] = []
    if form.is_valid() or not request.GET:
        if not request.GET:
            form = BundleChoicesForm({"autoscaler": "keda", "overflow": "none", "namespace": "llm"})
            form.is_valid()
        try:
            bundle = manifest_bundle_build(recommendation=recommendation, choices=form.choices(rank=rank))
        except BundleUnavailable as exc:
            error, problems = str(exc), [str(p) for p in exc.problems]
        else:
            files = [
                {
                    "path": path,
                    "id": "file-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-"),
                    "html": _highlighted(path, text),
                }
                for path, text in bundle.items()
            ]
    option = next((o for o in recommendation.options if o.get("rank") == rank), None)
    context = {
        "recommendation": recommendation,
        "option": option,
        "rank": rank,
        "form": form,
        "files": files,
        "error": error,
        "problems": problems,
        "query": request.GET.urlencode(),
        "pygments_css": _FORMATTER.get_style_defs(".highlight"),
    }
    return render(
        request, "manifests/preview.html", context, status=400 if error and option else 200 if option else 404
    )


@require_GET
@login_required
def bundle_download(request: HttpRequest, recommendation_id: int, rank: int) -> HttpResponse:
    recommendation = get_object_or_404(recommendations_visible_to(user=request.user), pk=recommendation_id)
    form = BundleChoicesForm(request.GET)
    if not form.is_valid():
        return render(
            request,
            "manifests/preview.html",
            {"recommendation": recommendation, "form": form, "rank": rank, "error": "Invalid choices."},
            status=400,
        )
    try:
        filename, payload = manifest_bundle_zip(
            recommendation=recommendation, choices=form.choices(rank=rank)
        )
    except BundleUnavailable as exc:
        context = {"recommendation": recommendation, "form": form, "rank": rank, "error": str(exc)}
        return render(request, "manifests/preview.html", context, status=400)
    response = HttpResponse(payload, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
