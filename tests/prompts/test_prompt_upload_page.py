"""/suites/upload/: staff only, same service and problem list as the command."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from prompts.models import Prompt, PromptSuite
from tests.factories import staff_user

pytestmark = pytest.mark.django_db
URL = "/suites/upload/"


@pytest.fixture
def staff_client(client):
    user = staff_user("staff", roles=("Suite uploaders",))
    client.force_login(user)
    client.user = user
    return client


def _post(client, name: str, data: bytes, suite: str = "web", fmt: str = "auto", follow: bool = False):
    upload = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    return client.post(URL, {"file": upload, "suite_name": suite, "format": fmt}, follow=follow)


def test_url_name():
    assert reverse("prompts:suite_upload") == URL


def test_anonymous_is_sent_to_admin_login(client):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_non_staff_is_redirected_and_cannot_post(client):
    user = get_user_model().objects.create_user("panel", password="pw-123456")
    client.force_login(user)
    assert client.get(URL).status_code == 302
    response = _post(client, "p.txt", b"a cat\n")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not PromptSuite.objects.exists()


def test_staff_sees_the_form(staff_client):
    response = staff_client.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'enctype="multipart/form-data"' in body and 'name="suite_name"' in body and 'name="format"' in body


def test_staff_upload_imports_and_links_to_the_suite_in_admin(staff_client, data_dir):
    data = (data_dir / "drawbench_excerpt.csv").read_bytes()
    response = _post(staff_client, "DrawBench.csv", data, suite="drawbench")
    suite = PromptSuite.objects.get(name="drawbench")
    assert response.status_code == 302 and response["Location"] == f"{URL}?suite={suite.pk}"
    assert suite.created_by == staff_client.user and suite.source_format == "csv"
    assert suite.prompts.count() == 6 and suite.prompts.exclude(expected_text="").count() == 3
    page = staff_client.get(response["Location"]).content.decode()
    admin_url = reverse("admin:prompts_promptsuite_change", args=[suite.pk])
    assert f'Imported 6 prompts into suite <a href="{admin_url}">drawbench</a>.' in page
    assert "3 ask for rendered text" in page and "DALL-E" in page


def test_bad_file_shows_problem_list_and_imports_nothing(staff_client):
    response = _post(staff_client, "bad.csv", b"caption\nx\n")
    assert response.status_code == 400
    body = response.content.decode()
    assert "Nothing was imported: 1 problem" in body
    assert "bad.csv:1: no prompt column in the CSV header (found &#x27;caption&#x27;)" in body
    assert not PromptSuite.objects.exists() and not Prompt.objects.exists()


def test_non_utf8_upload_lists_each_bad_line(staff_client):
    response = _post(staff_client, "p.txt", b"ok\ncaf\xe9\n")
    assert response.status_code == 400
    assert "p.txt:2: bytes that are not UTF-8 (0xE9 at byte 4); save the file as UTF-8" in response.content.decode()
    assert not PromptSuite.objects.exists()


def test_oversize_upload_is_refused(staff_client, settings):
    settings.PROMPT_FILE_MAX_BYTES = 10
    response = _post(staff_client, "p.txt", b"0123456789abc")
    assert response.status_code == 400
    assert "p.txt:0: file is 13 bytes, over the limit of 10 bytes" in response.content.decode()
    assert not PromptSuite.objects.exists()


def test_duplicate_warning_shown_after_success(staff_client):
    response = _post(staff_client, "p.txt", "一只猫\n一只猫\n".encode(), follow=True)
    body = response.content.decode()
    assert "p.txt:2: warning: duplicate of the prompt on line 1; kept once" in body
    assert list(Prompt.objects.values_list("text", "language")) == [("一只猫", "zh")]


def test_missing_fields_are_form_errors(staff_client):
    response = staff_client.post(URL, {"suite_name": "x", "format": "auto"})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    assert not PromptSuite.objects.exists()


def test_suite_admin_page_links_to_its_prompts(staff_client):
    user = staff_client.user
    user.is_superuser = True
    user.save()
    _post(staff_client, "p.txt", b"a sign that says 'OPEN'\na cat\n", suite="adm")
    suite = PromptSuite.objects.get(name="adm")
    page = staff_client.get(reverse("admin:prompts_promptsuite_change", args=[suite.pk])).content.decode()
    assert f"?suite__id__exact={suite.pk}" in page and "2 prompts</a> (1 ask for rendered text)" in page
    assert staff_client.get(reverse("admin:prompts_promptsuite_changelist")).status_code == 200
    assert staff_client.get(reverse("admin:prompts_promptsuite_add")).status_code == 200
