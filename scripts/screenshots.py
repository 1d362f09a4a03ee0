"""Screenshots of every page at 1280 and 800 px wide, signed in as the demo user on `make run`'s data.

    make run                                   # in another shell: the app with its demo team and users
    .venv/bin/python scripts/screenshots.py --base-url http://127.0.0.1:8000 --out test-artifacts/pages

It adds (once) three realistic workloads beside the demo's support chat through the REST API, plans each through
the pages as a manager would (waiting for the background plan), and saves `<page>-1280.png` and `<page>-800.png`
for every page a manager or viewer meets, 403 and 404 pages included. Debian's Chromium drives the pages
(`CHROMIUM_PATH`, default /usr/bin/chromium). It prints each file it wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DEMO_PASSWORD = "demo-advisor-2026"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
WIDTHS = (1280, 800)

BUSINESS_DAY = [0.05, 0.05, 0.05, 0.05, 0.05, 0.08, 0.15, 0.35, 0.7, 0.95, 1, 1, 0.9, 0.95, 1, 1, 0.95, 0.8,
                0.5, 0.3, 0.2, 0.12, 0.08, 0.06]  # fmt: skip
NIGHTLY = [1, 1, 1, 1, 1, 0.8, 0.3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.2, 0.6, 1]


def _constraints(gpus: list[str] | None = None, min_replicas: int = 1) -> dict[str, Any]:
    return {
        "gpus": gpus or [],
        "providers": [],
        "max_gpus_per_replica": 8,
        "spot": False,
        "min_replicas": min_replicas,
    }


# Three workloads as managers describe them: a RAG assistant on a 70B model, a nightly batch of summaries that
# may scale to zero by day, and a voice agent whose targets no deployment meets (the infeasible-plan page).
WORKLOADS: list[dict[str, Any]] = [
    {
        "name": "rag-assistant-70b",
        "model": "llama-3.1-70b",
        "traffic": {"hourly_requests_per_s": [round(7.5 * v, 3) for v in BUSINESS_DAY]},
        "prompt_tokens": {"mean": 3000, "p50": 2500, "p95": 7000, "max": 12000},
        "output_tokens": {"mean": 300, "p50": 250, "p95": 800, "max": 2048},
        "slo": {"ttft_p95_ms": 1500, "itl_p95_ms": 50},
        "quality": {"allowed_quantizations": ["bf16", "fp8", "awq-int4"]},
        "constraints": _constraints(),
    },
    {
        "name": "nightly-summaries",
        "model": "llama-3.1-8b",
        "traffic": {"hourly_requests_per_s": [round(4.0 * v, 3) for v in NIGHTLY]},
        "prompt_tokens": {"mean": 4000, "p50": 3500, "p95": 9000, "max": 16000},
        "output_tokens": {"mean": 400, "p50": 350, "p95": 900, "max": 1500},
        "slo": {"ttft_p95_ms": 20000, "itl_p95_ms": 200},
        "quality": {"allowed_quantizations": ["bf16", "fp8", "awq-int4"]},
        "constraints": _constraints(min_replicas=0),
    },
    {
        "name": "voice-agent-tight",
        "model": "llama-3.1-70b",
        "traffic": {"hourly_requests_per_s": [2.0] * 24},
        "prompt_tokens": {"mean": 1500, "p50": 1200, "p95": 4000, "max": 8000},
        "output_tokens": {"mean": 80, "p50": 60, "p95": 200, "max": 400},
        "slo": {"ttft_p95_ms": 60, "itl_p95_ms": 8},
        "quality": {"allowed_quantizations": ["bf16"]},
        "constraints": _constraints(gpus=["a100-80gb"]),
    },
]


def api(base: str, path: str, token: str | None = None, body: Any = None, method: str | None = None) -> Any:
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method or ("POST" if body is not None else "GET"),
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Token {token}"} if token else {}),
        },
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def ensure_workloads(base: str) -> dict[str, int]:
    token = api(base, "/api/v1/auth/token/", body={"username": "demo", "password": DEMO_PASSWORD})["token"]
    existing = {w["name"]: w["id"] for w in api(base, "/api/v1/workloads/?page_size=200", token)["results"]}
    for document in WORKLOADS:
        if document["name"] not in existing:
            created = api(base, "/api/v1/workloads/", token, {**document, "team": "demo"})
            existing[document["name"]] = created["id"]
    return existing


class Camera:
    def __init__(self, page: Any, out: Path) -> None:
        self.page, self.out = page, out
        out.mkdir(parents=True, exist_ok=True)

    def take(self, name: str) -> None:
        for width in WIDTHS:
            self.page.set_viewport_size({"width": width, "height": 900})
            self.page.wait_for_timeout(300)  # Plotly's responsive charts relayout on resize
            path = self.out / f"{name}-{width}.png"
            self.page.screenshot(path=str(path), full_page=True)
            print(path)
        self.page.set_viewport_size({"width": 1280, "height": 900})

    def visit(self, name: str, path: str, *, wait_for: str | None = None) -> None:
        self.page.goto(self.base + path)
        if wait_for:
            self.page.wait_for_selector(wait_for, timeout=60_000)
        self.take(name)

    base = ""


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/accounts/dashboard/")


def plan_through_the_page(page: Any, base: str, workload_id: int) -> str:
    """Press "Plan" on the workload's page and wait until the plan page shows its outcome."""
    page.goto(f"{base}/workloads/{workload_id}/")
    page.get_by_role("button", name="Plan", exact=True).click()
    page.wait_for_url(f"{base}/plans/*/")
    page.wait_for_selector("[data-plan-finished]", state="attached", timeout=120_000)
    return str(page.url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=Path("test-artifacts/pages"))
    args = parser.parse_args()
    base = args.base_url.rstrip("/")
    try:
        ids = ensure_workloads(base)
    except urllib.error.URLError as exc:
        print(f"cannot reach {base} ({exc}); start it with `make run`", file=sys.stderr)
        return 1

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        camera = Camera(page, args.out)
        camera.base = base
        camera.visit("01-sign-in", "/accounts/login/")
        sign_in(page, base, "demo")
        plans = {name: plan_through_the_page(page, base, ids[name]) for name in ids}
        camera.visit("02-dashboard", "/accounts/dashboard/")
        camera.visit("03-workloads", "/workloads/")
        camera.visit("04-workload-new", "/workloads/new/", wait_for="#traffic-editor-chart .main-svg")
        page.get_by_role("button", name="Nightly batch").click()
        page.wait_for_timeout(500)
        camera.take("05-workload-new-nightly-preset")
        camera.visit("06-workload-edit", f"/workloads/{ids['support-chat']}/edit/")
        camera.visit("07-workload-import-log", "/workloads/import-log/")
        for index, name in enumerate(ids, start=8):
            camera.visit(
                f"{index:02d}-workload-{name}",
                f"/workloads/{ids[name]}/",
                wait_for="#traffic-chart .main-svg",
            )
        for index, (name, url) in enumerate(plans.items(), start=20):
            camera.visit(f"{index:02d}-plan-{name}", url.removeprefix(base))
        camera.visit("30-plans", "/plans/")
        first, second = (plans["support-chat"], plans["rag-assistant-70b"])
        pks = [url.rstrip("/").rsplit("/", 1)[1] for url in (first, second)]
        camera.visit("31-compare-plans", f"/plans/compare/?plan={pks[0]}&plan={pks[1]}")
        camera.visit(
            "32-compare-options", f"/plans/compare/?option={pks[0]}:1&option={pks[0]}:2&option={pks[0]}:3"
        )
        camera.visit("33-manifests", f"/manifests/plans/{pks[0]}/options/1/")
        camera.visit("34-benchmarks", "/benchmarks/")
        camera.visit("35-benchmark-new", f"/benchmarks/workloads/{ids['support-chat']}/new/")
        camera.visit("36-benchmark-workers", "/benchmarks/workers/")
        camera.visit("40-catalog", "/catalog/")
        for index, section in enumerate(("gpus", "models", "engines", "offers", "api-prices"), start=41):
            camera.visit(f"{index:02d}-catalog-{section}", f"/catalog/{section}/")
        camera.visit("46-catalog-offers-h100", "/catalog/offers/?gpu=h100-sxm")
        camera.visit("47-glossary", "/glossary/")
        camera.visit("50-admin", "/admin/")
        camera.visit("51-api-docs", "/api/docs/", wait_for=".swagger-ui")
        camera.visit("52-not-found", "/workloads/999999/")
        page.context.clear_cookies()
        sign_in(page, base, "viewer")
        camera.visit("60-viewer-workloads", "/workloads/")
        camera.visit("61-viewer-forbidden", "/workloads/new/")
        camera.visit("62-viewer-plan", plans["support-chat"].removeprefix(base))
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
