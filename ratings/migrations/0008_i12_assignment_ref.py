"""Assignment.ref: the random id panelist URLs use instead of the sequential primary key (issue 12)."""

import secrets

from django.db import migrations, models

import ratings.models


def fill_refs(apps, schema_editor):
    Assignment = apps.get_model("ratings", "Assignment")
    batch = []
    for pk in Assignment.objects.filter(ref__isnull=True).values_list("pk", flat=True).iterator():
        batch.append(Assignment(pk=pk, ref=secrets.token_urlsafe(12)))
        if len(batch) >= 2000:
            Assignment.objects.bulk_update(batch, ["ref"])
            batch = []
    Assignment.objects.bulk_update(batch, ["ref"])


class Migration(migrations.Migration):

    dependencies = [
        ("ratings", "0007_i12_client_elapsed"),
    ]

    operations = [
        migrations.AddField(
            model_name="assignment",
            name="ref",
            field=models.CharField(max_length=24, null=True, editable=False),
        ),
        migrations.RunPython(fill_refs, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="assignment",
            name="ref",
            field=models.CharField(default=ratings.models.new_ref, editable=False, max_length=24, unique=True,
                                   help_text="The id panelists see in URLs (never the sequential primary key)."),
        ),
    ]
