"""The web process never imports torch or diffusers (they are the GPU worker's), measured in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Sets up Django as gunicorn does (evalsite.wsgi), builds a study with simulated ratings in a throwaway
# SQLite database, renders the leaderboard page and its CSV through the test client, validates a model's
# pipeline class as the admin does, and reports what got imported.
SCRIPT = r"""
import os, sys
import evalsite.wsgi  # django.setup(), as under gunicorn
from django.core.management import call_command
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from generation.validation import pipeline_class_error
from ratings.results.services import ratings_simulate
from ratings.services import study_create
from tests.factories import make_sweep
sweep, *_ = make_sweep(n_models=2, n_prompts=4, text_prompts=2)
study = study_create(sweep=sweep, name="web", mode="both", ratings_per_item=2)
ratings_simulate(study=study, panelists=3, seed=1)
client = Client()
client.force_login(get_user_model().objects.create(username="boss", is_staff=True, is_superuser=True))
page = client.get(f"/studies/{study.pk}/leaderboard/")
csv = b"".join(client.get(f"/studies/{study.pk}/leaderboard.csv").streaming_content)
assert page.status_code == 200 and b"Scores per model" in page.content, page.status_code
assert csv.count(b"\n") == 3, csv
assert pipeline_class_error(backend="diffusers", pipeline_class="FluxPipeline") == ""
assert "no pipeline class" in pipeline_class_error(backend="diffusers", pipeline_class="NoSuchPipeline")
print("IMPORTED", " ".join(m for m in ("torch", "diffusers", "transformers") if m in sys.modules))
"""


@pytest.mark.slow
def test_the_web_process_renders_the_leaderboard_without_torch(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "evalsite.settings", "DATABASE_URL": f"sqlite:///{tmp_path}/web.db",
           "EVALSITE_DATA_DIR": str(tmp_path), "CELERY_BROKER_URL": f"filesystem://{tmp_path}",
           "PYTHONPATH": str(ROOT),
           # the page computes its snapshot here, so the statistics too are checked to run without torch
           "EVALSITE_RESULTS_COMPUTE_ON_READ": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("IMPORTED"))
    assert line.split()[1:] == [], line  # neither torch nor diffusers nor transformers
