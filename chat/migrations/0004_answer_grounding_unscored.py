# Grounding can end "unscored": the scorer ran but gave no verdict (neither grounded nor flagged).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('chat', '0003_answer_grounding_status_passage_text'),
    ]

    operations = [
        migrations.AlterField(
            model_name='answer',
            name='grounding_status',
            field=models.CharField(choices=[('pending', 'Pending'), ('scored', 'Scored'), ('unscored', 'Not scored'), ('failed', 'Scoring failed')], default='pending', max_length=16),
        ),
    ]
