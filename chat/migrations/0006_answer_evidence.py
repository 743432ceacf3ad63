# "What the documents say" under a flagged answer, and which text the asker was shown (RAG_GROUNDING_POLICY).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('chat', '0005_answer_grounding_unscored'),
    ]

    operations = [
        migrations.AddField(
            model_name='answer',
            name='evidence_text',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='answer',
            name='evidence_citations',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='answer',
            name='shown',
            field=models.CharField(choices=[('answer', "The model's answer"), ('evidence', 'What the documents say')], default='answer', max_length=8),
        ),
    ]
