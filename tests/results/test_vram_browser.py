"""The leaderboard's "Will it fit my card?" section in a real browser: each model's fits-on table sits inside its
card, beside "not profiled" for a model without a profile (layout from bounding boxes)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from generation.models import GpuPrice, VramProfile
from ratings.results.services import ratings_simulate
from tests.factories import vram_report

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _inside(inner: dict, outer: dict) -> bool:
    return (inner["x"] >= outer["x"] - 0.5 and inner["y"] >= outer["y"] - 0.5
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5)


def test_fits_on_tables_sit_inside_their_cards(page, live_server, study_factory):
    study, (flux, sd3), _ = study_factory(mode="single", n_models=2, n_prompts=4, k=1, gold=False,
                                          names=["FLUX.1 [dev]", "Stable Diffusion 3.5 Large"])
    ratings_simulate(study=study, panelists=3, seed=2)
    VramProfile.objects.create(image_model=flux, status="done", report=vram_report(), cards=[8, 24, 48],
                               gpu_name="NVIDIA H200", finished_at=timezone.now())
    GpuPrice.objects.create(gpu_name="NVIDIA H100", usd_per_hour=Decimal("2.49"))
    get_user_model().objects.create_superuser("boss", "boss@example.com", "a-long-password-42")
    page.goto(f"{live_server.url}/studies/{study.pk}/leaderboard/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "a-long-password-42")
    page.click("input[type=submit]")
    page.wait_for_url(f"**/studies/{study.pk}/leaderboard/")

    section = page.locator("#fits-on")
    assert section.get_by_role("heading", name="Will it fit my card?").is_visible()
    section_box = section.bounding_box()
    flux_card = section.locator(f'.fits[data-model="{flux.slug}"]')
    sd3_card = section.locator(f'.fits[data-model="{sd3.slug}"]')
    table = flux_card.locator("table.fits-table")
    assert table.locator("tbody tr").count() == 3
    assert table.locator("tbody tr").nth(0).inner_text().split("\t")[:2] == ["8 GB", "does not fit"]
    assert table.locator("tbody tr").nth(1).inner_text().split("\t")[:3] == ["24 GB", "nf4", "5.42"]
    flux_box, table_box, sd3_box = flux_card.bounding_box(), table.bounding_box(), sd3_card.bounding_box()
    assert _inside(table_box, flux_box) and _inside(flux_box, section_box) and _inside(sd3_box, section_box)
    assert table_box["width"] > 200  # a readable table, not squeezed into a column
    assert sd3_card.locator(".not-profiled").inner_text() == "not profiled"
    assert sd3_card.locator("table").count() == 0
    # the score table's columns, in the row of each model
    flux_row = page.locator("#leaderboard tbody tr", has_text="FLUX.1 [dev]")
    assert flux_row.locator("td.min-vram").inner_text().split("\n")[0] == "24 GB"
    assert flux_row.locator("td.cost").inner_text().startswith("$")
    sd3_row = page.locator("#leaderboard tbody tr", has_text="Stable Diffusion 3.5 Large")
    assert sd3_row.locator("td.min-vram").inner_text() == "not profiled"
    row_box, cell_box = flux_row.bounding_box(), flux_row.locator("td.min-vram").bounding_box()
    assert _inside(cell_box, row_box)
