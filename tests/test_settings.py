from django.conf import settings


def test_celery_gpu_defaults():
    from evalsite.celery import app

    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.task_serializer == "json"
    assert app.conf.task_routes["generation.tasks.render_chunk"] == {"queue": "gpu"}


def test_embedded_defaults_need_no_server(monkeypatch, tmp_path):
    """With no environment, the settings module picks SQLite and the filesystem broker."""
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "EVALSITE_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c",
         "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='evalsite.settings';django.setup();"
         "from django.conf import settings as s;print(s.DATABASES['default']['ENGINE']);print(s.CELERY_BROKER_URL)"],
        env=env, capture_output=True, text=True, cwd=settings.BASE_DIR, check=True,
    ).stdout.split()
    assert out == ["django.db.backends.sqlite3", "filesystem://"]
    assert (tmp_path / "broker" / "queue").is_dir()
