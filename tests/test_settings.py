import subprocess
import sys

import pytest
from django.conf import settings

from tests.factories import staff_user

SETUP = "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='evalsite.settings';django.setup();"


def _in_fresh_process(code: str, *, home, cwd=None, **env: str) -> str:
    """Run `code` after django.setup() in a new interpreter with only the given environment."""
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(settings.BASE_DIR), **env}
    return subprocess.run([sys.executable, "-c", SETUP + code], env=environ, capture_output=True, text=True,
                          cwd=cwd or settings.BASE_DIR, check=True).stdout


def test_celery_gpu_defaults():
    from evalsite.celery import app

    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.task_serializer == "json"
    assert app.conf.task_routes["generation.tasks.render_chunk"] == {"queue": "gpu"}


def test_embedded_defaults_need_no_server(tmp_path):
    """With no environment, the settings module picks SQLite and the filesystem broker."""
    out = _in_fresh_process(
        "from django.conf import settings as s;print(s.DATABASES['default']['ENGINE']);print(s.CELERY_BROKER_URL)",
        home=tmp_path, EVALSITE_DATA_DIR=str(tmp_path),
    ).split()
    assert out == ["django.db.backends.sqlite3", "filesystem://"]
    assert (tmp_path / "broker" / "queue").is_dir()


def test_embedded_broker_keeps_its_files_in_the_data_dir(tmp_path):
    """Publishing on the filesystem broker writes under EVALSITE_DATA_DIR, never the working directory."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    data = tmp_path / "data"
    _in_fresh_process(
        "from evalsite.celery import app;app.send_task('generation.tasks.render_chunk', args=[0], queue='gpu')",
        home=tmp_path, cwd=cwd, EVALSITE_DATA_DIR=str(data),
    )
    assert list(cwd.iterdir()) == []
    assert any((data / "broker" / "control").iterdir())
    assert len(list((data / "broker" / "queue").iterdir())) == 1


@pytest.mark.django_db
def test_home_page_points_panelists_and_staff_somewhere(client, django_user_model):
    response = client.get("/")
    assert response.status_code == 200
    assert b"invite link" in response.content and b"/admin/login/?next=/studies/" in response.content
    staff = staff_user("s", roles=("Study managers", "Sweep runners", "Suite uploaders"))
    client.force_login(staff)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/studies/"
    page = client.get("/studies/").content.decode()
    for link in ('href="/studies/"', 'href="/sweeps/"', 'href="/suites/upload/"'):
        assert link in page


def test_cache_url_selects_a_shared_redis_cache(tmp_path):
    out = _in_fresh_process(
        "from django.conf import settings as s;print(s.CACHES['default']['BACKEND'])",
        home=tmp_path, EVALSITE_DATA_DIR=str(tmp_path), CACHE_URL="redis://127.0.0.1:6379/1",
    ).strip()
    assert out == "django.core.cache.backends.redis.RedisCache"
