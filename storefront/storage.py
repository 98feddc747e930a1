"""Where product deliverables live: a private root outside anything served publicly.

Uploads through `MEDIA_ROOT` could end up behind a `/media/` location that serves them to anyone
who has the path, for ever. Deliverables are written under `DELIVERABLES_ROOT/<schema>/` instead,
which no URL maps to: the only way out is the download view (storefront.views_orders), which
checks the line's state first and streams the file (or hands it to the proxy with
X-Accel-Redirect / X-Sendfile, `DELIVERY_ACCEL_HEADER`)."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import connection


class DeliverableStorage(FileSystemStorage):
    """One folder per tenant schema under DELIVERABLES_ROOT; no URL at all."""

    def __init__(self, **kwargs):
        kwargs.pop("location", None)
        kwargs.pop("base_url", None)
        super().__init__(**kwargs)

    @property  # not cached: the schema changes per request
    def base_location(self):
        return os.path.join(str(settings.DELIVERABLES_ROOT), connection.schema_name)

    @property
    def location(self):
        return os.path.abspath(self.base_location)

    @property
    def base_url(self):
        return None

    def url(self, name):
        raise ValueError("deliverables have no public URL; link to the download view instead")

    def deconstruct(self):
        return ("storefront.storage.DeliverableStorage", (), {})


def deliverable_storage() -> DeliverableStorage:
    return DeliverableStorage()
