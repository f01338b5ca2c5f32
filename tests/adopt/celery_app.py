"""A Celery application for the Redis inference test: broker and result backend in Redis (REDIS_URL)."""

import os

from celery import Celery

app = Celery("adopt_probe", broker=os.environ["REDIS_URL"], backend=os.environ["REDIS_URL"])
app.conf.update(task_default_queue="celery", worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
                task_queue_max_priority=3, task_default_priority=1)


@app.task
def add(x: int, y: int) -> int:
    return x + y
