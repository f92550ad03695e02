"""The model registry: seed_models, admin validation of any diffusers model."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from generation.models import ImageModel
from generation.validation import image_model_errors
from tests.factories import ImageModelFactory

EXPECTED = {
    # slug: (source, backend, class, steps, guidance, extra_params, quantization, fallback)
    "sd3-5-large": ("stabilityai/stable-diffusion-3.5-large", "diffusers", "StableDiffusion3Pipeline", 28, 7.0, {},
                    "none", None),
    "flux-1-dev": ("black-forest-labs/FLUX.1-dev", "diffusers", "FluxPipeline", 50, 3.5,
                   {"max_sequence_length": 512}, "none", None),
    "hunyuan-image-3": ("tencent/HunyuanImage-3.0", "transformers", "", 50, None, {}, "4bit", None),
    "z-image-turbo": ("Tongyi-MAI/Z-Image-Turbo", "diffusers", "ZImagePipeline", 9, 0.0, {}, "none", None),
    "ernie-image": ("baidu/ERNIE-Image", "diffusers", "ErnieImagePipeline", 50, 4.0, {"use_pe": False}, "none",
                    "z-image-turbo"),
    "ernie-image-turbo": ("baidu/ERNIE-Image-Turbo", "diffusers", "ErnieImagePipeline", 8, 1.0, {"use_pe": False},
                          "none", "z-image-turbo"),
}


def _check_reference_rows():
    assert ImageModel.objects.count() == len(EXPECTED)
    for slug, (source, backend, cls, steps, guidance, extra, quant, fallback) in EXPECTED.items():
        model = ImageModel.objects.get(slug=slug)
        assert (model.source, model.backend, model.pipeline_class) == (source, backend, cls), slug
        assert (model.num_inference_steps, model.guidance_scale, model.extra_params) == (steps, guidance, extra), slug
        assert (model.width, model.height, model.dtype, model.quantization) == (1024, 1024, "bfloat16", quant), slug
        assert (model.fallback.slug if model.fallback else None) == fallback, slug
        assert model.is_reference and model.enabled


@pytest.mark.django_db
def test_seed_models_twice_leaves_one_correct_row_each(capsys):
    call_command("seed_models")
    _check_reference_rows()
    # An edited reference row is restored, and no duplicate appears.
    ImageModel.objects.filter(slug="flux-1-dev").update(num_inference_steps=3, guidance_scale=9.0)
    call_command("seed_models")
    _check_reference_rows()
    hunyuan = ImageModel.objects.get(slug="hunyuan-image-3")
    assert hunyuan.trust_remote_code is True and "trust_remote_code" not in hunyuan.load_params
    assert "no dots" in hunyuan.notes
    assert ImageModel.objects.get(slug="sd3-5-large").min_vram_gb == 24.0
    assert "ernie-image" in capsys.readouterr().out


# --- admin -----------------------------------------------------------------------------

def _form_data(**overrides):
    data = {
        "name": "Sana 1.6B", "slug": "sana-1-6b", "enabled": "on", "notes": "",
        "backend": "diffusers", "source": "Efficient-Large-Model/Sana_1600M_1024px_diffusers", "revision": "",
        "pipeline_class": "SanaPipeline", "load_params": "{}",
        "num_inference_steps": "20", "guidance_scale": "4.5", "width": "1024", "height": "1024",
        "extra_params": "{}", "dtype": "bfloat16", "quantization": "none", "offload": "none",
        "min_vram_gb": "", "fallback": "",
    }
    data.update(overrides)
    return data


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("admin", "a@example.com", "pw-12345678")
    client.force_login(user)
    return client


ADD_URL = reverse("admin:generation_imagemodel_add")


@pytest.mark.django_db
@pytest.mark.parametrize("source", ["Efficient-Large-Model/Sana_1600M_1024px_diffusers", "/srv/models/sana"])
def test_admin_adds_any_diffusers_model_by_hub_id_or_local_path(staff_client, source):
    response = staff_client.post(ADD_URL, _form_data(source=source))
    assert response.status_code == 302, response.context["adminform"].form.errors
    model = ImageModel.objects.get(slug="sana-1-6b")
    assert (model.source, model.pipeline_class, model.num_inference_steps) == (source, "SanaPipeline", 20)
    assert not model.is_reference


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"num_inference_steps": "0"}, "num_inference_steps", "at least 1"),
        ({"pipeline_class": "FluxPipeline", "width": "1000"}, "width", "multiple of 16"),
        ({"pipeline_class": "StableDiffusionXLPipeline", "height": "1020"}, "height", "multiple of 8"),
        ({"pipeline_class": "NotAPipeline"}, "pipeline_class", "no pipeline class NotAPipeline"),
        ({"source": "just-a-name"}, "source", "neither a hub id"),
        ({"source": "../relative/dir"}, "source", "neither a hub id"),
        ({"extra_params": '{"num_inference_steps": 4}'}, "extra_params", "with the fields of this form"),
        ({"guidance_scale": "-1"}, "guidance_scale", "0 or more"),
        ({"backend": "transformers", "pipeline_class": "FluxPipeline"}, "pipeline_class", "leave the class empty"),
    ],
)
def test_admin_rejects_bad_settings_with_a_clear_message(staff_client, overrides, field, message):
    response = staff_client.post(ADD_URL, _form_data(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field]), errors
    assert not ImageModel.objects.filter(slug="sana-1-6b").exists()


@pytest.mark.django_db
def test_admin_rejects_a_fallback_that_is_the_model_itself(staff_client):
    model = ImageModelFactory(slug="m1")
    url = reverse("admin:generation_imagemodel_change", args=[model.pk])
    response = staff_client.post(url, _form_data(slug="m1", name="M1", fallback=str(model.pk)))
    assert response.status_code == 200
    assert "cannot be its own fallback" in " ".join(response.context["adminform"].form.errors["fallback"])
    model.refresh_from_db()
    assert model.fallback_id is None


@pytest.mark.django_db
def test_admin_rejects_a_fallback_cycle(staff_client):
    a = ImageModelFactory(slug="a")
    b = ImageModelFactory(slug="b", fallback=a)
    url = reverse("admin:generation_imagemodel_change", args=[a.pk])
    response = staff_client.post(url, _form_data(slug="a", name="A", fallback=str(b.pk)))
    assert response.status_code == 200
    assert "cycle: a → b → a" in " ".join(response.context["adminform"].form.errors["fallback"])
    a.refresh_from_db()
    assert a.fallback_id is None


@pytest.mark.django_db
def test_admin_accepts_a_fallback_chain_without_cycle(staff_client):
    z = ImageModelFactory(slug="z")
    response = staff_client.post(ADD_URL, _form_data(fallback=str(z.pk)))
    assert response.status_code == 302
    assert ImageModel.objects.get(slug="sana-1-6b").fallback == z


def test_transformers_backend_sizes_need_multiples_of_8_only():
    model = ImageModel(slug="h", name="h", backend="transformers", source="tencent/HunyuanImage-3.0",
                       pipeline_class="", num_inference_steps=50, width=40, height=40, trust_remote_code=True)
    assert image_model_errors(model=model) == {}
