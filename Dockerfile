# One image for web, ingest worker and GPU worker. On Linux x86_64 the torch wheel from the package index
# is a CUDA build, which the gpu-worker uses; the CPU processes simply find no GPU.
FROM python:3.11-slim
# Model hub access is a setting (RAG_HF_OFFLINE, default 1: local files only), not baked into the image.
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# Tesseract with its English, French, German and Spanish models: the OCR engine (ingestion/ocr.py).
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake libgomp1 \
    tesseract-ocr tesseract-ocr-eng tesseract-ocr-fra tesseract-ocr-deu tesseract-ocr-spa \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
# llama.cpp for any x86-64 CPU of the last decade (AVX2), never the build machine's own instruction set.
RUN CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" pip install -r requirements.txt
COPY . .
RUN RAG_DATA_DIR=/tmp/build python manage.py collectstatic --noinput --verbosity 0
EXPOSE 8000
CMD ["uvicorn", "ragsite.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
