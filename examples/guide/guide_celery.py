"""The Celery app of celeriac-guide's Celery rows (guide.py starts
`celery -A guide_celery worker` on a private redis-server named by GUIDE_REDIS)."""
import os

from celery import Celery

import guide

app = Celery("guide", broker=os.environ["GUIDE_REDIS"], backend=os.environ["GUIDE_REDIS"])
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                worker_prefetch_multiplier=4, broker_connection_retry_on_startup=True)


@app.task(name="guide.fetch")
def fetch(port, i):
    return guide.fetch_blocking(port, i)


@app.task(name="guide.count")
def count(limit, chunks, index):
    return guide.count_chunk(limit, chunks, index)
