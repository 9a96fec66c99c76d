from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rollout", "0007_target_deadlines"),
    ]

    operations = [
        migrations.AddField(
            model_name="rollouttarget",
            name="change_sent_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="rollouttarget",
            name="resent",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="rollouttarget",
            name="retrying_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="rollouttarget",
            name="rescan_after",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
