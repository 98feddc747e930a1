"""gunicorn's settings file (Procfile: `-c python:config.gunicorn`): the worker's warm-up hook."""


def post_worker_init(worker) -> None:
    """After config/wsgi.py has loaded (and warmed the process): open and warm one database
    connection per request thread before the worker accepts its first request."""
    pool = getattr(worker, "tpool", None)  # gthread; sync workers have no pool
    if pool is None:
        return
    from config.warm import warm_threads

    warm_threads(pool, worker.cfg.threads)
