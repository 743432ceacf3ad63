# Grounding can end "unscored": the scorer ran but gave no verdict (neither grounded nor flagged).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('chat', '0004_answer_adapter'),
    ]

    operations = [
        migrations.AlterField(
            model_name='answer',
            name='grounding_status',
            field=models.CharField(choices=[('pending', 'Pending'), ('scored', 'Scored'), ('unscored', 'Not scored'), ('failed', 'Scoring failed')], default='pending', max_length=16),
        ),
    ]
