# One image for web, ingest worker and GPU worker. On Linux x86_64 the torch wheel from the package index
# is a CUDA build, which the gpu-worker uses; the CPU processes simply find no GPU.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake libgomp1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
RUN RAG_DATA_DIR=/tmp/build python manage.py collectstatic --noinput --verbosity 0
EXPOSE 8000
CMD ["uvicorn", "ragsite.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
