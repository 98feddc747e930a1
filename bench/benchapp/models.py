"""A model that exists only to give the migration benchmark one new migration to apply."""

from django.db import models


class BenchNote(models.Model):
    text = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.text
