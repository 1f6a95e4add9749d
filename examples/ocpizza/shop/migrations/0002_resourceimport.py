# The record of the starting data's imports (import_resources --once).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="ResourceImport",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("checksum", models.CharField(max_length=64, unique=True)),
                (
                    "files",
                    models.TextField(help_text="The imported .xlsx file names, one per line."),
                ),
                ("imported_at", models.DateTimeField(auto_now_add=True)),
                (
                    "imported_by",
                    models.CharField(blank=True, help_text="Host that imported.", max_length=255),
                ),
                (
                    "adopted",
                    models.BooleanField(
                        default=False,
                        help_text=(
                            "Recorded without importing: the data came from an import made "
                            "before rows were kept."
                        ),
                    ),
                ),
            ],
            options={
                "ordering": ("-imported_at",),
            },
        ),
    ]
