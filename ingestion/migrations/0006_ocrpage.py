# OCR keeps each line of a scanned page with its box (what the citation viewer highlights on such pages).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ingestion', '0005_chunk_section_document_unit'),
    ]

    operations = [
        migrations.CreateModel(
            name='OcrPage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveIntegerField()),
                ('lines', models.JSONField(default=list)),
                ('document', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='ocr_pages', to='ingestion.document')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('document', 'number'), name='ocr_page_unique_number')],
            },
        ),
    ]
