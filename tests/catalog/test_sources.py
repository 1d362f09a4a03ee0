"""Sources read as links, and never as "same" (issue 14, defect 6): a ditto cell is resolved where the catalog
is read, since on a page the rows are filtered and sorted."""

from __future__ import annotations

from apps.catalog.specs import shown_sources
from apps.catalog.templatetags.sources import source_links, source_url
from tests.conftest import TeamWorld


def test_ditto_sources_are_shown_as_the_row_above(world: TeamWorld) -> None:
    shown = shown_sources()
    assert shown["api_prices"][("OpenAI", "GPT-4o-mini")].startswith("https://")
    assert shown["gpus"]["a100-40gb"].startswith("https://www.nvidia.com/")
    client = world.client_for(world.alice)
    prices = client.get("/catalog/api-prices/").content.decode()
    assert ">same<" not in prices
    assert "(as above)" not in client.get("/catalog/gpus/").content.decode()


def test_sources_become_links() -> None:
    commit = "95eaf484fa404db8356b745607d162ea4fdf8fda"
    assert source_url(f"catalogs/v8/lambda/vms.csv@{commit}") == (
        f"https://github.com/skypilot-org/skypilot-catalog/blob/{commit}/catalogs/v8/lambda/vms.csv"
    )
    html = str(source_links("https://www.nvidia.com/en-us/data-center/h100/ (H100 datasheet)"))
    assert html.startswith('<a href="https://www.nvidia.com/en-us/data-center/h100/"')
    assert html.endswith("(H100 datasheet)")
    assert str(source_links("project estimate <b>")) == "project estimate &lt;b&gt;"


def test_offers_page_is_paged_with_a_market_summary_and_prices_to_the_cent(world: TeamWorld) -> None:
    response = world.client_for(world.alice).get("/catalog/offers/")
    html = response.content.decode()
    assert response.status_code == 200
    assert len(response.context["offers"]) == 50
    assert "Page 1 of" in html
    assert 'id="market-table"' in html
    h100 = next(m for m in response.context["market"] if m["slug"] == "h100-sxm")
    assert h100["providers"] > 1
    assert h100["median_usd_per_gpu_hour"] > h100["cheapest_usd_per_gpu_hour"]
    listing = (
        world.client_for(world.alice).get("/catalog/offers/?provider=lambda&gpu=a100-40gb").content.decode()
    )
    assert "$1.29" in listing
    assert "skypilot-org/skypilot-catalog/blob/" in listing
