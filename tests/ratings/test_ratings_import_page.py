"""The staff page /studies/import/: who may use it, what it imports, what it lists when it refuses."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from ratings.models import Rating, Study

URL = "/studies/import/"
GOOD = (
    "rater,model,prompt,criterion,score,category,pair,side\n"
    "ann,Alpha,a red cube,prompt_accuracy,7,Objects,,\n"
    "ann,Beta,a red cube,prompt_accuracy,4,Objects,,\n"
    "bob,Alpha,a red cube,prompt_accuracy,8,Objects,,\n"
    "bob,Beta,a blue ball,prompt_accuracy,3,,p1,left\n"
    "bob,Alpha,a blue ball,prompt_accuracy,9,,p1,right\n"
)


def _user(*, staff: bool, group: str | None = None, superuser: bool = False):
    User = get_user_model()
    user = User.objects.create_user(f"u{User.objects.count()}", password="a-long-password-42", is_staff=staff,
                                    is_superuser=superuser)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.mark.django_db
def test_only_study_managers_reach_it(client):
    assert reverse("ratings:ratings_upload") == URL
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.force_login(_user(staff=False))
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.force_login(_user(staff=True))  # staff without the role
    assert client.get(URL).status_code == 403
    upload = SimpleUploadedFile("r.csv", GOOD.encode(), content_type="text/csv")
    assert client.post(URL, {"file": upload, "study_name": "x", "format": "auto"}).status_code == 403
    assert not Study.objects.exists()
    client.force_login(_user(staff=True, group="Study managers"))
    response = client.get(URL)
    assert response.status_code == 200 and b"Import ratings" in response.content


@pytest.mark.django_db
def test_upload_imports_and_links_the_study(client):
    client.force_login(_user(staff=True, superuser=True))
    upload = SimpleUploadedFile("sheet.csv", GOOD.encode(), content_type="text/csv")
    response = client.post(URL, {"file": upload, "study_name": "Paper forms", "format": "auto"}, follow=True)
    study = Study.objects.get()
    assert response.redirect_chain == [(f"{URL}?study={study.pk}", 302)]
    body = response.content.decode()
    assert "Imported 5 ratings (2 models, 2 prompts, 2 raters, 1 pairs)" in body
    assert f'href="/studies/{study.pk}/leaderboard/"' in body
    assert study.name == "Paper forms" and study.imported_from == "sheet.csv" and study.mode == "both"
    assert Rating.objects.filter(study=study).count() == 5
    board = client.get(f"/studies/{study.pk}/leaderboard/")
    assert board.status_code == 200 and b'id="imported-note"' in board.content
    dashboard = client.get(f"/studies/{study.pk}/")
    assert b'id="imported-note"' in dashboard.content and b"New invite link" not in dashboard.content


@pytest.mark.django_db
def test_a_bad_file_lists_its_problems_and_imports_nothing(client):
    client.force_login(_user(staff=True, superuser=True))
    bad = GOOD.replace("ann,Beta,a red cube,prompt_accuracy,4", "ann,Beta,a red cube,prompt_accuracy,14") \
              .replace("p1,right", "p1,middle")
    upload = SimpleUploadedFile("bad.csv", bad.encode(), content_type="text/csv")
    response = client.post(URL, {"file": upload, "study_name": "x", "format": "auto"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Nothing was imported: 2 problems" in body
    assert "<code>bad.csv:3: score &#x27;14&#x27; is not a whole number from 1 to 10</code>" in body
    assert "<code>bad.csv:6: unknown side &#x27;middle&#x27;; use left or right (or leave it empty)</code>" in body
    assert not Study.objects.exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_browser_upload_then_the_leaderboard(page, live_server, tmp_path):
    get_user_model().objects.create_superuser("boss", "boss@example.com", "a-long-password-42")
    path = tmp_path / "panel.csv"
    path.write_text(GOOD, encoding="utf-8")
    page.goto(f"{live_server.url}/studies/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "a-long-password-42")
    page.click("input[type=submit]")
    page.wait_for_url("**/studies/")
    page.click("#import-ratings")
    page.wait_for_url("**/studies/import/")
    page.set_input_files("#id_file", str(path))
    page.fill("#id_study_name", "Reference panel")
    page.click("button[type=submit]")
    page.wait_for_url("**/studies/import/?study=*")
    assert "Imported 5 ratings" in page.locator("body").inner_text()
    page.click("#leaderboard-link")
    page.wait_for_url("**/leaderboard/")
    table = page.locator("#leaderboard")
    assert table.locator("tbody tr").count() == 2
    assert table.locator("tbody tr th").all_inner_texts() == ["Alpha", "Beta"]
    first = table.locator("tbody tr").first.locator("td")
    assert first.nth(0).inner_text().strip() == "imported"  # speed
    assert "8.00" in first.nth(1).inner_text()  # prompt accuracy of Alpha: 7 and 8 alone, 9 in the pair
    note = page.locator("#imported-note")
    assert note.is_visible() and "panel.csv" in note.inner_text()
    box, table_box = note.bounding_box(), table.bounding_box()
    assert box["y"] + box["height"] <= table_box["y"]  # the note sits above the table


@pytest.mark.django_db
def test_staff_pages_of_the_imported_sweep_serve_no_image(client):
    from generation.models import Generation
    from generation.selectors import sweep_has_images

    client.force_login(_user(staff=True, superuser=True))
    upload = SimpleUploadedFile("sheet.csv", GOOD.encode(), content_type="text/csv")
    client.post(URL, {"file": upload, "study_name": "Paper forms", "format": "auto"})
    sweep = Study.objects.get().sweep
    assert not sweep_has_images(sweep=sweep)  # no "new study of this sweep": nothing to show a panelist
    g = Generation.objects.filter(sweep=sweep).select_related("prompt").first()
    pages = [f"/sweeps/{sweep.pk}/gallery/", f"/sweeps/{sweep.pk}/gallery/prompt/{g.prompt_id}/",
             f"/sweeps/images/{g.public_id}/"]
    for url in pages:
        response = client.get(url)
        body = response.content.decode()
        assert response.status_code == 200, url
        assert "/thumb/" not in body and "/file/" not in body, url
        assert "no image" in body or "image itself is not here" in body, url
    assert client.get(f"/sweeps/images/{g.public_id}/file/").status_code == 404
