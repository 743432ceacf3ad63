# Keys' conversations are linked from the api app now (api.KeyConversation, filled by its 0003).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("api", "0003_keyconversation"),
        ("chat", "0001_initial"),
    ]

    operations = [
        migrations.RemoveField(model_name="conversation", name="api_key"),
    ]
