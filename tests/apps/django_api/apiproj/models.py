from django.db import models


class SpooledRow(models.Model):
    """One row per spooled job: what the @spool task writes through the ORM."""

    name = models.CharField(max_length=64)
    spooler_pid = models.IntegerField()
