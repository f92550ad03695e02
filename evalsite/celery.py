"""The Celery app, tuned for GPU workers.

One worker process per GPU (``--pool=solo -c 1``, ``CUDA_VISIBLE_DEVICES``). A render
chunk is acknowledged only after it finishes (late acks), so a killed worker's chunk is
redelivered; each task is idempotent (it skips images already done). Never fork after
CUDA is initialised: with the solo pool, the task runs in the worker's main process.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")

app = Celery("evalsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_routes={
        "generation.tasks.render_chunk": {"queue": "gpu"},
        "generation.tasks.*": {"queue": "gpu"},
    },
    task_default_queue="default",
)
app.autodiscover_tasks()
