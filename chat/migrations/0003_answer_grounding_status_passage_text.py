# Answers record whether grounding was scored (or failed), and keep the text of each passage they were given.

from django.db import migrations, models


def backfill(apps, schema_editor):
    Answer = apps.get_model("chat", "Answer")
    Chunk = apps.get_model("ingestion", "Chunk")
    Answer.objects.filter(grounding_score__isnull=False).update(grounding_status="scored")
    for answer in Answer.objects.exclude(passages=[]).iterator():
        ids = [int(p["chunk_id"]) for p in answer.passages if "text" not in p]
        if not ids:
            continue
        texts = dict(Chunk.objects.filter(id__in=ids).values_list("id", "text"))
        answer.passages = [{**p, "text": p.get("text", texts.get(int(p["chunk_id"]), ""))} for p in answer.passages]
        answer.save(update_fields=["passages"])


class Migration(migrations.Migration):

    dependencies = [
        ("chat", "0002_remove_conversation_api_key"),
        ("ingestion", "0003_document_card_embedding"),
    ]

    operations = [
        migrations.AddField(
            model_name="answer",
            name="grounding_status",
            field=models.CharField(
                choices=[("pending", "Pending"), ("scored", "Scored"), ("failed", "Scoring failed")],
                default="pending", max_length=16,
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
