"""The Celery app: `celery -A config worker` and `celery -A config beat`."""

import os

from celery import Celery, signals

from config import log

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The request id of the request that enqueued a task, on the task's log lines.
signals.before_task_publish.connect(log.task_headers_stamp, weak=False)
signals.task_prerun.connect(log.task_request_id_set, weak=False)
signals.task_postrun.connect(log.task_request_id_reset, weak=False)
