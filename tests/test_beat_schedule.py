"""Every periodic job names a task the worker actually registers."""

from config.celery_app import app


def test_every_beat_entry_fans_out_to_a_registered_task():
    app.loader.import_default_modules()
    registered = set(app.tasks)
    assert app.conf.beat_schedule
    for name, entry in app.conf.beat_schedule.items():
        assert entry["task"] in registered, name
        target = entry["args"][0]
        assert target in registered, f"{name} fans out to unknown task {target}"
