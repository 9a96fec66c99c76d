from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0008_node_disruption_policy"),
    ]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="mode_read_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
