"""import_images: images made elsewhere join a sweep, normalised like rendered ones; bad input imports nothing."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image, PngImagePlugin

from generation.models import Backend, Generation, GenerationStatus, ImageModel, Origin
from generation.selectors import sweep_progress
from tests.factories import make_sweep

pytestmark = pytest.mark.django_db


def image_bytes(color=(200, 30, 40), size=(96, 80), fmt="PNG", text: str = "") -> bytes:
    buf = io.BytesIO()
    kwargs = {}
    if fmt == "PNG" and text:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", text)
        kwargs["pnginfo"] = info
    Image.new("RGB", size, color).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture
def sweep_and_prompts():
    sweep, models, prompts, gens = make_sweep(n_models=2, n_prompts=3)
    sweep.name = "drawbench-x"
    sweep.save()
    return sweep, prompts


def write_folder(root: Path, prompts, *, manifest: str | None = None, files: dict[str, bytes] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    files = files if files is not None else {
        f"api_{p.position}.png": image_bytes((10 * i, 50, 90), text="made by SecretAPI v3") for i, p in enumerate(prompts)
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    if manifest is None:
        manifest = "prompt,file,seed,seconds,cost\n" + "".join(
            f"{p.position},api_{p.position}.png,0,{4.5 + i},1.00\n" for i, p in enumerate(prompts)
        )
    (root / "manifest.csv").write_text(manifest)
    return root


def run_import(path, *, sweep="drawbench-x", model="SecretAPI v3"):
    return call_command("import_images", "--sweep", sweep, "--model", model, str(path))


def problems_of(capsys, path, **kw) -> str:
    with pytest.raises(CommandError, match="nothing imported"):
        run_import(path, **kw)
    return capsys.readouterr().err


def test_folder_with_manifest_is_imported_normalised_with_supplied_figures(sweep_and_prompts, tmp_path, capsys):
    sweep, prompts = sweep_and_prompts
    run_import(write_folder(tmp_path / "api", prompts))
    assert "imported 3 images of SecretAPI v3" in capsys.readouterr().out
    model = ImageModel.objects.get(name="SecretAPI v3")
    assert model.backend == Backend.IMPORTED and model in sweep.image_models.all()
    gens = list(Generation.objects.filter(sweep=sweep, model=model).order_by("prompt__position"))
    assert [g.origin for g in gens] == [Origin.IMPORTED] * 3 and {g.status for g in gens} == {GenerationStatus.DONE}
    assert [g.seconds for g in gens] == [4.5, 5.5, 6.5] and {g.cost for g in gens} == {1.0}
    for g in gens:
        with g.image.open("rb") as f:
            data = f.read()
        img = Image.open(io.BytesIO(data))
        assert (img.format, img.size, img.mode) == ("PNG", (64, 64), "RGB")  # the sweep's canvas, not 96×80
        assert not {k for k in img.info if k != "dpi"} and b"SecretAPI" not in data  # metadata stripped
        assert "api_" not in g.image.name and g.public_id in g.image.name  # opaque name
        assert (g.native_width, g.native_height) == (96, 80)
        assert g.settings_snapshot["import"]["seconds_supplied"] is True
    row = next(r for r in sweep_progress(sweep=sweep) if r["model_id"] == model.pk)
    assert row["imported"] == 3 and row["mean_seconds"] is None and row["supplied_seconds"] == pytest.approx(5.5)
    # the rendered models' measured speed is untouched
    assert all(r["imported"] == 0 for r in sweep_progress(sweep=sweep) if r["model_id"] != model.pk)


def test_zip_of_images_named_by_prompt_number_needs_no_manifest(sweep_and_prompts, tmp_path, capsys):
    sweep, prompts = sweep_and_prompts
    path = tmp_path / "api.zip"
    with zipfile.ZipFile(path, "w") as z:
        for p in prompts:
            z.writestr(f"{p.position}.jpg", image_bytes(fmt="JPEG"))
    run_import(path)
    gens = Generation.objects.filter(sweep=sweep, origin=Origin.IMPORTED)
    assert gens.count() == 3 and set(gens.values_list("seconds", flat=True)) == {None}
    assert set(gens.values_list("seed", flat=True)) == {0}


def test_an_existing_registered_model_keeps_its_registration(sweep_and_prompts, tmp_path, capsys):
    sweep, prompts = sweep_and_prompts
    ImageModel.objects.create(slug="closed-x", name="Closed X", source="org/closed-x")
    run_import(write_folder(tmp_path / "api", prompts), model="closed-x")
    model = ImageModel.objects.get(slug="closed-x")
    assert model.backend == Backend.DIFFUSERS and Generation.objects.filter(model=model, origin="imported").count() == 3


# --- bad input: each a clear, line-numbered message, and nothing imported ------------------------------------


def assert_nothing_imported(sweep, before_files: set[str], media: Path):
    assert not Generation.objects.filter(sweep=sweep, origin=Origin.IMPORTED).exists()
    assert not ImageModel.objects.filter(backend=Backend.IMPORTED).exists()
    assert set(p.as_posix() for p in media.rglob("*") if p.is_file()) == before_files


@pytest.fixture
def media(settings):
    root = Path(settings.MEDIA_ROOT)
    return root, {p.as_posix() for p in root.rglob("*") if p.is_file()}


def test_bad_manifest_rows_are_each_reported_with_their_line(sweep_and_prompts, tmp_path, capsys, media):
    sweep, prompts = sweep_and_prompts
    p1, p2, p3 = prompts
    manifest = (
        "prompt,file,seed\n"
        f"{p1.position},api_{p1.position}.png,0\n"
        f"{p2.position},missing.png,0\n"          # line 3: missing file
        "999,api_x.png,0\n"                          # line 4: unknown prompt
        f"{p1.position},api_{p3.position}.png,0\n"  # line 5: duplicate prompt for this model
        f"{p3.position},api_{p3.position}.png,7\n"  # line 6: a seed the sweep doesn't have
    )
    files = {f"api_{p.position}.png": image_bytes() for p in prompts} | {"api_x.png": image_bytes()}
    err = problems_of(capsys, write_folder(tmp_path / "api", prompts, manifest=manifest, files=files))
    assert "manifest.csv:3: file 'missing.png' is not in" in err
    assert "manifest.csv:4: unknown prompt '999'" in err
    assert f"manifest.csv:5: prompt {p1.position} (seed 0) appears twice for this model; first at manifest.csv:2" in err
    assert "manifest.csv:6: seed 7 is not one of this sweep's seeds" in err
    assert_nothing_imported(sweep, media[1], media[0])


def test_a_file_that_is_not_an_image_is_refused(sweep_and_prompts, tmp_path, capsys, media):
    sweep, prompts = sweep_and_prompts
    files = {f"api_{p.position}.png": image_bytes() for p in prompts}
    files[f"api_{prompts[1].position}.png"] = b"<html>not an image</html>"
    err = problems_of(capsys, write_folder(tmp_path / "api", prompts, files=files))
    assert f"manifest.csv:3 (api_{prompts[1].position}.png): not an image" in err
    assert_nothing_imported(sweep, media[1], media[0])


def test_a_decompression_bomb_is_refused(sweep_and_prompts, tmp_path, capsys, media, settings):
    sweep, prompts = sweep_and_prompts
    settings.IMAGE_IMPORT_MAX_PIXELS = 1_000_000
    bomb = io.BytesIO()
    Image.new("1", (4000, 4000)).save(bomb, format="PNG")  # 16 MP of one colour: a few KB on disk
    assert len(bomb.getvalue()) < 10_000
    files = {f"api_{p.position}.png": image_bytes() for p in prompts}
    files[f"api_{prompts[2].position}.png"] = bomb.getvalue()
    err = problems_of(capsys, write_folder(tmp_path / "api", prompts, files=files))
    assert f"manifest.csv:4 (api_{prompts[2].position}.png): 4000×4000 pixels is over the limit" in err
    assert "decompression bomb" in err
    assert_nothing_imported(sweep, media[1], media[0])


def test_a_pil_decompression_bomb_over_its_own_limit_is_refused(sweep_and_prompts, tmp_path, capsys, media,
                                                                monkeypatch):
    from PIL import Image as PILImage

    sweep, prompts = sweep_and_prompts
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # PIL's own guard fires on open
    path = tmp_path / "api.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{prompts[0].position}.png", image_bytes(size=(100, 100)))
    err = problems_of(capsys, path)
    assert f"{path}: {prompts[0].position}.png (" in err and "decompression bomb" in err
    assert_nothing_imported(sweep, media[1], media[0])


@pytest.mark.parametrize("name, why", [
    ("../evil.png", "climbs out of the archive (../)"),
    ("imgs/../../evil.png", "climbs out of the archive (../)"),
    ("/etc/evil.png", "is an absolute path"),
    ("C:\\evil.png", "is an absolute path"),
])
def test_a_zip_with_unsafe_names_is_refused(sweep_and_prompts, tmp_path, capsys, media, name, why):
    sweep, prompts = sweep_and_prompts
    path = tmp_path / "api.zip"
    with zipfile.ZipFile(path, "w") as z:
        for p in prompts:
            z.writestr(f"{p.position}.png", image_bytes())
        z.writestr(zipfile.ZipInfo(name), image_bytes())
    err = problems_of(capsys, path)
    assert f"{path}: entry {name!r} {why}" in err
    assert_nothing_imported(sweep, media[1], media[0])
    assert not (tmp_path / "evil.png").exists()


def test_a_zip_over_the_size_limit_is_refused(sweep_and_prompts, tmp_path, capsys, media, settings):
    sweep, prompts = sweep_and_prompts
    path = tmp_path / "api.zip"
    with zipfile.ZipFile(path, "w") as z:
        for p in prompts:
            z.writestr(f"{p.position}.png", image_bytes())
    settings.IMAGE_IMPORT_MAX_BYTES = path.stat().st_size - 1
    err = problems_of(capsys, path)
    assert f"{path}: the zip is {path.stat().st_size:,} bytes, over the limit of" in err
    assert_nothing_imported(sweep, media[1], media[0])


def test_a_zip_that_unpacks_over_the_limit_is_refused(sweep_and_prompts, tmp_path, capsys, media, settings):
    sweep, prompts = sweep_and_prompts
    path = tmp_path / "api.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for p in prompts:
            z.writestr(f"{p.position}.png", image_bytes())
        z.writestr("padding.bin", b"\0" * 2_000_000)
    settings.IMAGE_IMPORT_MAX_UNPACKED_BYTES = 1_000_000
    err = problems_of(capsys, path)
    assert "unpacks to" in err and "over the limit of 1,000,000 bytes" in err
    assert_nothing_imported(sweep, media[1], media[0])


def test_a_model_that_already_has_images_in_the_sweep_is_refused(sweep_and_prompts, tmp_path, capsys, media):
    sweep, prompts = sweep_and_prompts
    rendered = sweep.image_models.order_by("pk").first()
    before = Generation.objects.filter(sweep=sweep).count()
    err = problems_of(capsys, write_folder(tmp_path / "api", prompts), model=rendered.name)
    assert f"model {rendered.name!r} already has images in sweep" in err
    assert Generation.objects.filter(sweep=sweep).count() == before
    run_import(tmp_path / "api")  # under a new name it goes in, and a second time it is refused
    err = problems_of(capsys, tmp_path / "api")
    assert "model 'SecretAPI v3' already has images in sweep" in err
    assert Generation.objects.filter(sweep=sweep, origin=Origin.IMPORTED).count() == 3


def test_unknown_sweep_and_missing_path_are_clear(sweep_and_prompts, tmp_path, capsys):
    err = problems_of(capsys, tmp_path / "nope", sweep="no-such-sweep")
    assert "no sweep named 'no-such-sweep'" in err
    err = problems_of(capsys, tmp_path / "nope")
    assert f"{tmp_path / 'nope'}: no such folder or zip file" in err


def test_files_named_wrongly_without_manifest_are_listed(sweep_and_prompts, tmp_path, capsys, media):
    sweep, prompts = sweep_and_prompts
    folder = tmp_path / "api"
    folder.mkdir()
    (folder / f"{prompts[0].position}.png").write_bytes(image_bytes())
    (folder / "sunset.png").write_bytes(image_bytes())
    (folder / "notes.txt").write_text("hello")
    err = problems_of(capsys, folder)
    assert "sunset.png: the name is not a prompt number" in err and "notes.txt: not an image file name" in err
    assert_nothing_imported(sweep, media[1], media[0])


def test_leaderboard_speed_cells_say_supplied_for_imported_images(sweep_and_prompts, tmp_path, capsys):
    from ratings import services
    from ratings.results.selectors import model_facts

    sweep, prompts = sweep_and_prompts
    for g in Generation.objects.filter(sweep=sweep):
        g.seconds = 2.0
        g.save(update_fields=["seconds"])
    run_import(write_folder(tmp_path / "api", prompts))
    study = services.study_create(sweep=sweep, name="mixed", mode="single", ratings_per_item=1)
    facts = {f.name: f for f in model_facts(study=study)}
    api = facts["SecretAPI v3"]
    assert api.speed_median is None and api.n_images == 0  # never counted as our measurement
    assert api.imported is True and api.n_imported == 3 and api.speed_supplied == pytest.approx(5.5)
    rendered = [f for name, f in facts.items() if name != "SecretAPI v3"]
    assert all(f.speed_median == pytest.approx(2.0) and f.n_imported == 0 for f in rendered)


def test_the_web_process_imports_images_without_torch(tmp_path):
    import subprocess
    import sys

    code = ("import os, sys, io; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'evalsite.settings'); "
            "import django; django.setup(); import evalsite.urls; from PIL import Image; "
            "from generation.engine import normalize_image; "
            "normalize_image(Image.new('RGB', (10, 10)), width=8, height=8, fmt='png'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "EVALSITE_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_upload_page_takes_a_folder_of_images_and_a_separate_manifest(sweep_and_prompts, settings):
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client
    from django.urls import reverse

    sweep, prompts = sweep_and_prompts
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    url = reverse("generation:sweep_import", args=[sweep.pk])
    files = [SimpleUploadedFile(f"shot-{p.position}.webp", image_bytes(fmt="WEBP"), content_type="image/webp")
             for p in prompts]
    bad_manifest = SimpleUploadedFile("m.csv", b"prompt,file\n" + b"".join(
        f"{p.position},shot-{p.position}.webp\n".encode() for p in prompts)
        + f"{prompts[0].position},shot-{prompts[1].position}.webp\n{prompts[2].position},x.webp\n".encode())
    response = client.post(url, {"model_name": "Folder API", "folder": files, "manifest": bad_manifest})
    assert response.status_code == 400
    html = response.content.decode()
    assert "m.csv:6: file &#x27;x.webp&#x27; is not in upload" in html
    assert f"m.csv:5: prompt {prompts[0].position} (seed 0) appears twice for this model; first at m.csv:2" in html
    assert not Generation.objects.filter(origin=Origin.IMPORTED).exists()
    for f in files:
        f.seek(0)
    manifest = SimpleUploadedFile("m.csv", b"prompt,file,cost\n" + b"".join(
        f"{p.position},shot-{p.position}.webp,0.04\n".encode() for p in prompts))
    response = client.post(url, {"model_name": "Folder API", "folder": files, "manifest": manifest})
    assert response.status_code == 302 and "/gallery/?model=" in response["Location"]
    gens = Generation.objects.filter(sweep=sweep, origin=Origin.IMPORTED)
    assert gens.count() == 3 and set(gens.values_list("cost", flat=True)) == {0.04}
    assert {g.image.name.rsplit(".", 1)[-1] for g in gens} == {"png"}  # the sweep's format, not WebP
