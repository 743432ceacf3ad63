# The link from an API key to its conversations moves from chat.Conversation.api_key to this app.

import django.db.models.deletion
from django.db import migrations, models


def links_copy(apps, schema_editor):
    Conversation = apps.get_model("chat", "Conversation")
    KeyConversation = apps.get_model("api", "KeyConversation")
    KeyConversation.objects.bulk_create(
        KeyConversation(conversation_id=cid, key_id=kid)
        for cid, kid in Conversation.objects.filter(api_key__isnull=False).values_list("id", "api_key_id")
    )


def links_restore(apps, schema_editor):
    Conversation = apps.get_model("chat", "Conversation")
    KeyConversation = apps.get_model("api", "KeyConversation")
    for link in KeyConversation.objects.all():
        Conversation.objects.filter(id=link.conversation_id).update(api_key_id=link.key_id)


class Migration(migrations.Migration):

    dependencies = [
        ("api", "0002_key_permissions"),
        ("chat", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="KeyConversation",
            fields=[
                ("conversation", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name="key_link", serialize=False, to="chat.conversation")),
                ("key", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="conversation_links", to="api.apikey")),
            ],
        ),
        migrations.RunPython(links_copy, links_restore),
    ]
