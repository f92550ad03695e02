"""Issue 14 on the board: "Min VRAM" and the fits-on tables from the latest VRAM profile ("not profiled" without
one), "$ per 1,000 images" from a GPU price, in the page, the CSV and the leaderboard command; a new profile or
price refreshes the boards that show it."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from generation.models import GpuPrice, VramProfile
from generation.signals import vram_profile_done
from ratings.results import snapshots
from ratings.results.cost import model_cost, usd_per_1000_images
from ratings.results.export import leaderboard_rows
from ratings.results.selectors import leaderboard_compute
from tests.factories import vram_report

# --------------------------------------------------------------------------- the arithmetic


def test_usd_per_1000_images_is_seconds_times_1000_over_3600_times_the_price():
    assert usd_per_1000_images(seconds_per_image=3.6, usd_per_hour=1.0) == pytest.approx(1.0)
    # FLUX.1 [dev] full size at 28 steps, 5.12 s/image, on a GPU at $3.50 an hour
    assert usd_per_1000_images(seconds_per_image=5.12, usd_per_hour=3.50) == pytest.approx(4.977778, abs=1e-6)
    assert usd_per_1000_images(seconds_per_image=0.0, usd_per_hour=3.5) == 0.0
    with pytest.raises(ValueError):
        usd_per_1000_images(seconds_per_image=-1.0, usd_per_hour=3.5)


def test_model_cost_needs_one_priced_gpu_and_says_why_not():
    prices = {"NVIDIA H200": 3.5}
    cost, price, note = model_cost(seconds_per_image=7.2, gpus={"NVIDIA H200"}, on_cpu=False, prices=prices)
    assert (round(cost, 6), price, note) == (7.0, 3.5, "")
    assert model_cost(seconds_per_image=7.2, gpus={"NVIDIA H100"}, on_cpu=False, prices=prices) == (
        None, None, "no price for NVIDIA H100 (admin: GPU prices)")
    assert model_cost(seconds_per_image=7.2, gpus=set(), on_cpu=True, prices=prices)[2] == "rendered on a CPU"
    assert "several GPUs" in model_cost(seconds_per_image=7.2, gpus={"NVIDIA H200", "NVIDIA H100"}, on_cpu=False,
                                        prices=prices)[2]
    assert model_cost(seconds_per_image=None, gpus={"NVIDIA H200"}, on_cpu=False, prices=prices)[2] == "no speed measured"


# --------------------------------------------------------------------------- the board


@pytest.fixture
def rated(study_factory):
    study, models, prompts = study_factory(mode="single", n_models=2, n_prompts=4, k=1, gold=False)
    call_command("simulate_panel", study=study.pk, panelists=3, seed=1, stdout=io.StringIO())
    return study, models


def _profile(model, *, when=None, **kw) -> VramProfile:
    return VramProfile.objects.create(image_model=model, status="done", report=vram_report(**kw), cards=[8, 24, 48],
                                      gpu_name="NVIDIA H200", finished_at=when or timezone.now())


@pytest.mark.django_db
def test_board_facts_from_the_latest_done_profile_and_the_price(rated):
    study, (a, b) = rated
    _profile(a, min_card=(48, "bf16"), when=timezone.now() - timedelta(days=1))
    latest = _profile(a)
    VramProfile.objects.create(image_model=b, status="failed", error="no GPU")  # not done: b is not profiled
    GpuPrice.objects.create(gpu_name="NVIDIA H100", usd_per_hour=Decimal("2.49"), note="example")
    board = leaderboard_compute(study=study)
    fa, fb = (next(m for m in board.models if m.id == x.pk) for x in (a, b))
    assert fa.vram_fit.profile_id == latest.pk and fa.vram_fit.gpu_name == "NVIDIA H200"
    assert (fa.vram_fit.min_card_gb, fa.min_vram_setting()) == (24, "nf4")
    assert [(c.card_gb, c.setting, c.seconds) for c in fa.vram_fit.cards] == [(8, "", None), (24, "nf4", 5.42),
                                                                             (48, "bf16", 5.12)]
    assert fb.vram_fit is None and fb.min_vram_setting() == "not profiled"
    # make_sweep: model A's images took 1.0-1.3 s (median 1.15) on an "NVIDIA H100"
    assert fa.usd_per_hour == 2.49 and fa.usd_per_1000_images == pytest.approx(1.15 * 1000 / 3600 * 2.49)
    header, rows = leaderboard_rows(board=board)
    assert header[-8:] == ["ocr_text_accuracy_pct", "ocr_ci_low", "ocr_ci_high", "ocr_n_images", "ocr_all_words_pct",
                           "min_vram_card_gb", "min_vram_setting", "usd_per_1000_images"]
    by_slug = {r[1]: r for r in rows}
    assert by_slug[a.slug][-3:] == [24.0, "nf4", round(1.15 * 1000 / 3600 * 2.49, 4)]
    assert by_slug[b.slug][-3:-1] == ["", "not profiled"]


@pytest.mark.django_db
def test_a_profile_where_nothing_fits_says_so(rated):
    study, (a, _) = rated
    _profile(a, min_card=None)
    fa = next(m for m in leaderboard_compute(study=study).models if m.id == a.pk)
    assert fa.vram_fit.min_card_gb is None and fa.min_vram_setting() == "does not fit"


@pytest.mark.django_db
def test_staff_page_shows_min_vram_fits_on_and_cost(rated, admin_client):
    study, (a, b) = rated
    page = admin_client.get(f"/studies/{study.pk}/leaderboard/").content.decode()
    assert 'id="min-vram-column">Min VRAM</th>' in page and "$ per 1,000 images" in page
    assert page.count("not profiled") >= 4  # both models: table cell and fits-on card
    assert "no price for NVIDIA H100 (admin: GPU prices)" in page
    _profile(a)  # a new profile and a price change the board's inputs: the page's snapshot is recomputed
    GpuPrice.objects.create(gpu_name="NVIDIA H100", usd_per_hour=Decimal("2.49"))
    page = admin_client.get(f"/studies/{study.pk}/leaderboard/").content.decode()
    fits = page[page.index('<section class="card" id="fits-on">'):]
    fits = fits[:fits.index("</section>")]
    cards = {part.split('"', 1)[0]: part for part in fits.split('<div class="fits" data-model="')[1:]}
    a_card = cards[a.slug]
    assert "profiled on NVIDIA H200" in a_card
    assert '<th scope="row" class="num">8 GB</th><td colspan="3" class="muted">does not fit</td>' in a_card
    assert '<th scope="row" class="num">24 GB</th><td>nf4</td><td class="num">5.42</td>' in a_card
    assert '<p class="muted not-profiled">not profiled</p>' in cards[b.slug] and "<table" not in cards[b.slug]
    row_a = page[page.index(f'<th scope="row">{a.name}</th>'):]
    row_a = row_a[:row_a.index("</tr>")]
    assert '<td class="num min-vram">24 GB<span class="n muted">nf4</span></td>' in row_a
    assert "$0.80" in row_a and "at $2.49/GPU-hour" in row_a
    csv_rows = list(csv.reader(io.StringIO(b"".join(
        admin_client.get(f"/studies/{study.pk}/leaderboard.csv").streaming_content).decode())))
    assert csv_rows[0][-3:] == ["min_vram_card_gb", "min_vram_setting", "usd_per_1000_images"]
    assert {r[1]: r[-3:-1] for r in csv_rows[1:]} == {a.slug: ["24.0", "nf4"], b.slug: ["", "not profiled"]}


@pytest.mark.django_db
def test_leaderboard_command_prints_min_vram_and_cost(rated):
    study, (a, _) = rated
    _profile(a)
    GpuPrice.objects.create(gpu_name="NVIDIA H100", usd_per_hour=Decimal("2.49"))
    out = io.StringIO()
    call_command("leaderboard", study=study.pk, stdout=out)
    head, _, *lines = out.getvalue().splitlines()
    assert "Min VRAM" in head and "$ per 1,000 images" in head
    line_a = next(x for x in lines if x.startswith(a.name))
    assert "24 GB nf4" in line_a and "$0.80 at $2.49/h" in line_a
    assert "not profiled" in next(x for x in lines if x.startswith("Model B"))


@pytest.mark.django_db
def test_a_finished_profile_and_a_price_ask_for_a_new_snapshot(rated, settings, monkeypatch,
                                                               django_capture_on_commit_callbacks):
    study, (a, _) = rated
    settings.RESULTS_COMPUTE_ON_READ = False
    sent = []
    monkeypatch.setattr(snapshots.current_app, "send_task", lambda name, **kw: sent.append((name, kw["args"])))
    vram_profile_done.send(sender=VramProfile, image_model_id=a.pk)
    assert sent == [(snapshots.SNAPSHOT_TASK, [study.pk, "facts", False])]
    with django_capture_on_commit_callbacks(execute=True):
        GpuPrice.objects.create(gpu_name="NVIDIA H100", usd_per_hour=Decimal("2.49"))
        GpuPrice.objects.create(gpu_name="Other GPU", usd_per_hour=Decimal("1"))  # no image of this study on it
    assert sent[1:] == [(snapshots.SNAPSHOT_TASK, [study.pk, "facts", False])]
