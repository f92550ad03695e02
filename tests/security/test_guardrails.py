"""Issue 12 (6): admin changes that would corrupt a study or let anyone run code are refused."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import IntegrityError, transaction
from django.test import RequestFactory
from django.urls import reverse

from generation.models import ImageModel
from generation.validation import image_model_errors
from ratings.models import Study
from tests.factories import ImageModelFactory, SweepFactory, staff_user

pytestmark = pytest.mark.django_db


def _study_form(study, user, **changes):
    model_admin = admin.site._registry[Study]
    request = RequestFactory().post("/")
    request.user = user
    Form = model_admin.get_form(request, study, change=True)
    data = {f: getattr(study, f) for f in Form.base_fields if hasattr(study, f)}
    data.update({"sweep": study.sweep_id, "created_by": "", "share_token": study.share_token or ""})
    data.update(changes)
    return model_admin, request, Form(data=data, instance=study)


def test_sweep_and_mode_lock_once_the_study_has_items(study_factory):
    study, _, _ = study_factory(mode="single", n_models=2, n_prompts=2, k=1)
    assert study.items.exists()
    root = staff_user("root")
    root.is_superuser = True
    root.save()
    model_admin, request, _ = _study_form(study, root)
    assert {"sweep", "mode"} <= set(model_admin.get_readonly_fields(request, study))
    # even a form that still has the fields (a tampered POST, another admin) refuses them
    from ratings.admin import StudyAdminForm

    other = SweepFactory()
    data = {f: getattr(study, f) for f in StudyAdminForm.base_fields if hasattr(study, f)}
    data.update({"sweep": other.pk, "mode": "pair", "created_by": "", "share_token": ""})
    form = StudyAdminForm(data=data, instance=study)
    assert not form.is_valid()
    assert "cannot change once it has items" in " ".join(form.errors["sweep"])
    assert "cannot change once it has items" in " ".join(form.errors["mode"])
    # a study without items may still change both
    empty = Study.objects.create(name="empty", sweep=other, mode="single")
    model_admin, request, _ = _study_form(empty, root)
    assert "sweep" not in model_admin.get_readonly_fields(request, empty)


@pytest.mark.parametrize("minutes", [0, 24 * 60 + 1])
def test_timeout_below_a_minute_or_over_a_day_is_refused(study_factory, minutes):
    study, _, _ = study_factory(mode="single", n_models=2, n_prompts=2, k=1)
    from ratings.admin import StudyAdminForm

    data = {f: getattr(study, f) for f in StudyAdminForm.base_fields if hasattr(study, f)}
    data.update({"sweep": study.sweep_id, "created_by": "", "share_token": "", "assignment_timeout_minutes": minutes})
    form = StudyAdminForm(data=data, instance=study)
    assert not form.is_valid() and "assignment_timeout_minutes" in form.errors
    with pytest.raises(IntegrityError), transaction.atomic():  # and the database refuses it too
        Study.objects.filter(pk=study.pk).update(assignment_timeout_minutes=minutes)


def _model(**kw):
    base = {"slug": "m", "name": "M", "backend": "diffusers", "source": "org/model", "pipeline_class": "FluxPipeline",
            "num_inference_steps": 28, "width": 1024, "height": 1024}
    base.update(kw)
    return ImageModel(**base)


@pytest.mark.parametrize(("kw", "field", "message"), [
    ({"width": 1_600_000}, "width", "at most 4096"),
    ({"height": 2**31}, "height", "at most 4096"),
    ({"width": 4112}, "width", "at most 4096"),
    ({"width": 1000}, "width", "multiple of 16"),
    ({"num_inference_steps": 1001}, "num_inference_steps", "at most 1000"),
    ({"guidance_scale": 1e308}, "guidance_scale", "at most 50"),
    ({"guidance_scale": float("inf")}, "guidance_scale", "0 or more"),
    ({"guidance_scale": float("nan")}, "guidance_scale", "0 or more"),
    ({"source": "/"}, "source", "inside the model roots"),
    ({"source": "/etc"}, "source", "inside the model roots"),
    ({"source": "/models"}, "source", "inside the model roots"),
    ({"source": "/models/../etc"}, "source", "without '..'"),
    ({"load_params": {"trust_remote_code": True}}, "load_params", "its own permission"),
    ({"backend": "transformers", "pipeline_class": "", "source": "tencent/HunyuanImage-3.0"}, "trust_remote_code",
     "own code"),
])
def test_model_settings_out_of_range_are_refused(kw, field, message):
    errors = image_model_errors(model=_model(**kw))
    assert message in " ".join(errors.get(field, [])), errors


@pytest.mark.parametrize("kw", [
    {}, {"guidance_scale": 0.0}, {"guidance_scale": 50.0}, {"width": 4096, "height": 4096},
    {"num_inference_steps": 1000}, {"source": "/models/flux-dev"}, {"source": "/srv/models/sana"},
    {"backend": "transformers", "pipeline_class": "", "trust_remote_code": True},
])
def test_sane_model_settings_pass(kw):
    assert image_model_errors(model=_model(**kw)) == {}


def test_a_model_directory_in_model_dir_passes_and_a_file_does_not(settings, tmp_path):
    settings.MODEL_DIR = tmp_path
    (tmp_path / "good").mkdir()
    (tmp_path / "file").write_text("x")
    assert image_model_errors(model=_model(source=str(tmp_path / "good"))) == {}
    assert "a file" in " ".join(image_model_errors(model=_model(source=str(tmp_path / "file")))["source"])


def _admin_post(client, user, **overrides):
    data = {"name": "Remote", "slug": "remote", "enabled": "on", "notes": "", "backend": "diffusers",
            "source": "org/remote", "revision": "", "pipeline_class": "FluxPipeline", "load_params": "{}",
            "num_inference_steps": "20", "guidance_scale": "3.5", "width": "1024", "height": "1024",
            "extra_params": "{}", "dtype": "bfloat16", "quantization": "none", "offload": "none",
            "min_vram_gb": "", "fallback": "", "trust_remote_code": "on"}
    data.update(overrides)
    client.force_login(user)
    return client.post(reverse("admin:generation_imagemodel_add"), data)


def test_trust_remote_code_needs_its_own_permission(client):
    manager = staff_user("manager", roles=("Model managers",))
    response = _admin_post(client, manager)
    assert response.status_code == 302
    assert ImageModel.objects.get(slug="remote").trust_remote_code is False  # read-only for them: not set
    trusted = staff_user("trusted", roles=("Model managers", "Model code trust"))
    response = _admin_post(client, trusted, slug="remote-2")
    assert response.status_code == 302
    assert ImageModel.objects.get(slug="remote-2").trust_remote_code is True
    # smuggling it through load_params is refused for everyone
    response = _admin_post(client, trusted, slug="remote-3", load_params='{"trust_remote_code": true}')
    assert response.status_code == 200 and not ImageModel.objects.filter(slug="remote-3").exists()


def test_staff_without_manage_models_cannot_add_or_change_models(client):
    plain = staff_user("plain", roles=("Sweep runners",))
    assert _admin_post(client, plain).status_code == 403
    model = ImageModelFactory()
    client.force_login(plain)
    url = reverse("admin:generation_imagemodel_change", args=[model.pk])
    response = client.post(url, {"name": "changed"})
    assert response.status_code == 403 or ImageModel.objects.get(pk=model.pk).name != "changed"


def test_rendering_passes_remote_code_only_from_the_field():
    from generation.services.rendering import image_model_spec

    assert "trust_remote_code" not in image_model_spec(model=ImageModelFactory()).load_params
    assert image_model_spec(model=ImageModelFactory(trust_remote_code=True)).load_params["trust_remote_code"] is True


def test_an_existing_model_directory_outside_the_roots_passes_an_arbitrary_folder_does_not(tmp_path):
    model = tmp_path / "elsewhere" / "my-model"
    model.mkdir(parents=True)
    assert "inside the model roots" in " ".join(image_model_errors(model=_model(source=str(model)))["source"])
    (model / "model_index.json").write_text("{}")
    assert image_model_errors(model=_model(source=str(model))) == {}
