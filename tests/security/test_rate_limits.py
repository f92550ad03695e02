"""Issue 12 (5): shared links, tokens, answers, images and invites are rate limited; staff logins lock out."""

from __future__ import annotations

import re
import secrets

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from ratings import services
from ratings.models import Panelist
from tests.factories import make_sweep, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    sweep, *_ = make_sweep(n_models=2, n_prompts=3)
    study = services.study_create(sweep=sweep, name="limits", mode="single", gold_enabled=False)
    services.study_open(study=study)
    return study


def _mint(share, ip):
    return Client(REMOTE_ADDR=ip).post(f"/r/{share}/start/")


def test_one_client_mints_few_panelists_from_a_shared_link(study, settings):
    share = services.study_share_enable(study=study)
    codes = [_mint(share, "10.0.0.1").status_code for _ in range(100)]  # 100 fresh sessions, one address
    assert codes[:5] == [302] * 5 and set(codes[5:]) == {429}
    assert Panelist.objects.filter(study=study).count() == 5
    assert _mint(share, "10.0.0.2").status_code == 302  # another client is not blocked


def test_a_study_caps_the_panelists_its_shared_link_mints(study, settings):
    settings.EVALSITE_RATES = {**settings.EVALSITE_RATES, "share_client": "1000/h"}
    study.share_max_panelists = 10
    study.save()
    share = services.study_share_enable(study=study)
    codes = [_mint(share, f"10.1.0.{i}").status_code for i in range(30)]
    assert codes.count(302) == 10 and set(codes[10:]) == {403}
    assert Panelist.objects.filter(study=study, from_share=True).count() == 10
    services.panelist_create(study=study)  # invite links are not counted against the cap


def test_a_study_limits_how_fast_its_shared_link_mints(study, settings):
    settings.EVALSITE_RATES = {**settings.EVALSITE_RATES, "share_client": "1000/h", "share_study": "20/h"}
    share = services.study_share_enable(study=study)
    codes = [_mint(share, f"10.2.{i // 250}.{i % 250}").status_code for i in range(40)]  # many addresses
    assert codes.count(302) == 20 and set(codes[20:]) == {429}


def test_token_guessing_is_cut_off_per_address(study):
    guesser, panelist = Client(REMOTE_ADDR="10.3.0.1"), services.panelist_create(study=study)
    codes = [guesser.get(f"/r/{secrets.token_urlsafe(24)}/").status_code for _ in range(200)]
    # 20 misses allowed (the check before the lookup lets the 21st through, which makes it 21 counted)
    assert codes[:21] == [404] * 21 and set(codes[21:]) == {429}
    assert guesser.get(f"/r/{panelist.token}/").status_code == 429  # even a right one, from that address
    assert Client(REMOTE_ADDR="10.3.0.2").get(f"/r/{panelist.token}/").status_code == 200


def test_answers_and_images_are_limited_per_panelist(study, settings):
    settings.EVALSITE_RATES = {**settings.EVALSITE_RATES, "answer": "3/h", "image": "2/h"}
    panelist = services.panelist_create(study=study)
    services.panelist_consent(panelist=panelist)
    client = Client()
    html = client.get(f"/r/{panelist.token}/").content.decode()
    src = re.findall(r'<img src="([^"]+)"', html)[0]
    assert [client.get(src).status_code for _ in range(3)] == [200, 200, 429]
    codes = []
    for _ in range(4):
        action = re.search(r'hx-post="(/r/[^"]+/a/[\w-]+/)"', html).group(1)
        names = set(re.findall(r'type="radio" name="((?:single|left|right)-[\w-]+)"', html))
        response = client.post(action, {n: "5" for n in names}, headers={"HX-Request": "true"})
        codes.append(response.status_code)
        html = response.content.decode() if response.status_code == 200 else html
    assert codes == [200, 200, 200, 429]


def test_invites_are_limited_per_staff_user(study, settings, client):
    settings.EVALSITE_RATES = {**settings.EVALSITE_RATES, "invite": "2/h"}
    client.force_login(staff_user("manager", roles=("Study managers",)))
    codes = [client.post(f"/studies/{study.pk}/invite/").status_code for _ in range(3)]
    assert codes == [302, 302, 429]


def test_staff_login_locks_out_after_five_failures():
    user = get_user_model().objects.create_user("boss", password="right-pass-123", is_staff=True)
    client = Client(REMOTE_ADDR="10.4.0.1")
    codes = [client.post("/admin/login/?next=/admin/", {"username": "boss", "password": f"wrong{i}"}).status_code
             for i in range(100)]
    assert codes[:4] == [200] * 4 and set(codes[5:]) == {429}, codes[:8]
    locked = client.post("/admin/login/?next=/admin/", {"username": "boss", "password": "right-pass-123"})
    assert locked.status_code == 429  # locked out: even the right password waits for the cool-off
    other = Client(REMOTE_ADDR="10.4.0.2")
    assert other.post("/admin/login/?next=/admin/", {"username": user.username,
                                                      "password": "right-pass-123"}).status_code == 302
