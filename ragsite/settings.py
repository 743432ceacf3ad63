"""All settings, read from the environment in this one place (django-environ).

Defaults are embedded and need no server: SQLite, Celery's filesystem broker and the bundled CPU models.
Setting DATABASE_URL / REDIS_URL switches to PostgreSQL / Redis. With RAG_PRODUCTION=1 a missing secret
fails at start-up instead of running with a development key.
"""

import os
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

PRODUCTION = env.bool("RAG_PRODUCTION", default=False)
DEBUG = env.bool("DEBUG", default=not PRODUCTION)
if PRODUCTION:
    SECRET_KEY = env.str("SECRET_KEY")  # no default: fail fast
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

DATA_DIR = Path(env.str("RAG_DATA_DIR", default=str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "audit",
    "accounts",
    "ingestion",
    "retrieval",
    "llm",
    "chat",
    "api",
    "ninja",  # serves the API docs' Swagger UI from our static files, not a CDN (offline installs)
]

MIDDLEWARE = [
    # First: it times the whole request, caps API bodies and gives every API error the JSON error format.
    "api.middleware.ApiRequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "ragsite.errors.ErrorMiddleware",
]

ROOT_URLCONF = "ragsite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "ingestion.context.access",
            ],
        },
    },
]
WSGI_APPLICATION = "ragsite.wsgi.application"
ASGI_APPLICATION = "ragsite.asgi.application"


def _database() -> dict[str, Any]:
    db: dict[str, Any] = env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
    if db["ENGINE"] == "django.db.backends.sqlite3":
        # SQLite creates the file but not its folder: a fresh checkout has no var/ yet.
        Path(db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        # WAL lets the web server read while a worker writes; IMMEDIATE avoids lock-upgrade deadlocks.
        db["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    else:
        db.setdefault("CONN_MAX_AGE", 60)
        db.setdefault("CONN_HEALTH_CHECKS", True)
    return db


DATABASES = {"default": _database()}
# Concurrent test runs on one machine each get their own test database (set by `make test`).
if env.str("RAG_TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env.str("RAG_TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"
# A session lasts this long (seconds); with single sign-on, groups are read again at each sign-in, so a
# shorter session makes a group removed in the identity provider take effect sooner.
SESSION_COOKIE_AGE = env.int("RAG_SESSION_SECONDS", default=14 * 24 * 3600)

# Single sign-on with OpenID Connect (accounts/): on when RAG_OIDC_ISSUER is set. The provider's group
# claim is mirrored into Django groups at each sign-in; collections are granted to groups by name.
OIDC_ISSUER = env.str("RAG_OIDC_ISSUER", default="")
OIDC_CLIENT_ID = env.str("RAG_OIDC_CLIENT_ID") if OIDC_ISSUER else ""  # no default: fail fast
OIDC_CLIENT_SECRET = env.str("RAG_OIDC_CLIENT_SECRET") if OIDC_ISSUER else ""
OIDC_SCOPES = env.str("RAG_OIDC_SCOPES", default="openid email profile")
OIDC_GROUPS_CLAIM = env.str("RAG_OIDC_GROUPS_CLAIM", default="groups")  # a dotted path reaches nested claims
OIDC_USERNAME_CLAIM = env.str("RAG_OIDC_USERNAME_CLAIM", default="preferred_username")
OIDC_STAFF_GROUPS = env.list("RAG_OIDC_STAFF_GROUPS", default=[])  # members are staff (and superusers)
OIDC_PROVIDER_NAME = env.str("RAG_OIDC_PROVIDER_NAME", default="single sign-on")  # the sign-in button's label
OIDC_TIMEOUT = env.float("RAG_OIDC_TIMEOUT", default=10.0)  # seconds for each call to the provider
# 0: only single sign-on signs people in (the password form, the admin's included, refuses passwords).
PASSWORD_LOGIN = env.bool("RAG_PASSWORD_LOGIN", default=True)
if not PASSWORD_LOGIN and not OIDC_ISSUER:
    raise ImproperlyConfigured("RAG_PASSWORD_LOGIN=0 needs single sign-on: set RAG_OIDC_ISSUER, or nobody can sign in")
AUTHENTICATION_BACKENDS = [
    *(["accounts.backends.SsoBackend"] if OIDC_ISSUER else []),
    *(["django.contrib.auth.backends.ModelBackend"] if PASSWORD_LOGIN else []),
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = DATA_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Uploads: the limit is enforced per file by the ingestion service; Django's own limit caps the request.
MAX_UPLOAD_BYTES = env.int("RAG_MAX_UPLOAD_BYTES", default=100 * 1024 * 1024)
MAX_UPLOAD_FILES = env.int("RAG_MAX_UPLOAD_FILES", default=50)
MAX_PDF_PAGES = env.int("RAG_MAX_PDF_PAGES", default=5000)
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_UPLOAD_FILES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
PDF_OCR = env.bool("RAG_PDF_OCR", default=True)
# The citation viewer's page images (ingestion/pages.py): rendered this many pixels wide (about 150 dpi for
# A4 or Letter), by this many threads per web process, and cached on disk under DATA_DIR/page-cache/ up to
# this size (least recently used images go first).
PAGE_IMAGE_WIDTH = env.int("RAG_PAGE_IMAGE_WIDTH", default=1280)
PAGE_RENDER_THREADS = env.int("RAG_PAGE_RENDER_THREADS", default=2)
PAGE_CACHE_BYTES = env.int("RAG_PAGE_CACHE_MB", default=512) * 1024 * 1024
# Rewrite tables found on PDF pages as rows that carry their labels, headers and title (ingestion/tables.py).
PDF_TABLES = env.bool("RAG_PDF_TABLES", default=True)

# Redis, when set, is the broker; otherwise kombu's filesystem transport needs no server at all.
REDIS_URL = env.str("REDIS_URL", default="")
# Lets several deployments (or test runs) share one Redis without seeing each other's queues or pushes.
BROKER_KEYPREFIX = env.str("RAG_BROKER_KEYPREFIX", default="")
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
if not REDIS_URL:
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # A task not acknowledged within this time is redelivered: it must exceed the longest hard time limit.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("RAG_BROKER_VISIBILITY_TIMEOUT", default=3 * 3600),
        "global_keyprefix": BROKER_KEYPREFIX,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "ingest"
# The answering queue's name: "gpu" unless a second pool (or a test's own worker) answers apart.
GPU_QUEUE = env.str("RAG_GPU_QUEUE", default="gpu")
CELERY_TASK_ROUTES = {
    "ingestion.tasks.*": {"queue": "ingest"}, "retrieval.tasks.*": {"queue": "ingest"}, "chat.tasks.*": {"queue": GPU_QUEUE}
}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Per-queue limits (seconds): ingestion of a large scanned PDF is long; one answer is not.
INGEST_SOFT_TIME_LIMIT = env.int("RAG_INGEST_SOFT_TIME_LIMIT", default=3600)
INGEST_TIME_LIMIT = env.int("RAG_INGEST_TIME_LIMIT", default=3900)
# A document QUEUED or PROCESSING without progress for this long is re-queued (or failed after
# MAX_INGEST_ATTEMPTS) by `manage.py requeue_stalled` and the documents page; PROCESSING waits a full
# hard time limit longer, since a live task may sit in one long stage (OCR) without writing progress.
STALLED_AFTER_SECONDS = env.int("RAG_STALLED_AFTER_SECONDS", default=900)
# Answer streams (browser SSE and API): with Redis, the worker's push on the answer's channel wakes them and
# the row is read anyway every RAG_STREAM_PUSH_FALLBACK_S (a push lost is a delay, not a hang); without
# Redis they read the row every RAG_STREAM_POLL_S.
STREAM_POLL_S = env.float("RAG_STREAM_POLL_S", default=0.1)
STREAM_PUSH_FALLBACK_S = env.float("RAG_STREAM_PUSH_FALLBACK_S", default=2.0)
GPU_SOFT_TIME_LIMIT = env.int("RAG_GPU_SOFT_TIME_LIMIT", default=300)
GPU_TIME_LIMIT = env.int("RAG_GPU_TIME_LIMIT", default=330)

# Embedding and chunking.
EMBEDDER = env.str("RAG_EMBEDDER", default="ingestion.embedding.SentenceTransformerEmbedder")
EMBEDDER_MODEL = env.str("RAG_EMBEDDER_MODEL", default="")  # '' = the bundled all-MiniLM-L6-v2
EMBED_BATCH_SIZE = env.int("RAG_EMBED_BATCH_SIZE", default=32)
EMBED_THREADS = env.int("RAG_EMBED_THREADS", default=0)  # 0 = torch's default
# bf16 (default): the transformer in bfloat16, pooling in float32: ~2x the float32 embedder on a CPU with
# AVX-512 BF16 and the same vectors (cosine >= 0.999 to float32 on every 10-Q chunk); none: float32 (use it on
# CPUs without native bf16, where bf16 is emulated and slower).
# int8: MiniLM's Linear layers run as int8 on the CPU (~1.3x faster, cosine ~0.98 to float32). Not the
# default: dynamic int8 scales activations per batch, so a text's vector depends on the other texts
# of its batch (cosine 0.96 alone vs in a batch), and 10-Q recall@5 varied between runs (0.97, then 0.92).
# Documents embedded by another variant are re-embedded by `manage.py reembed_stale`.
EMBED_QUANTIZE = env.str("RAG_EMBED_QUANTIZE", default="bf16")
CHUNK_TOKENS = env.int("RAG_CHUNK_TOKENS", default=240)
CHUNK_OVERLAP_TOKENS = env.int("RAG_CHUNK_OVERLAP_TOKENS", default=24)

# The FAISS index: a cache of the database, one file set per collection.
INDEX_DIR = Path(env.str("RAG_INDEX_DIR", default=str(DATA_DIR / "indexes")))
# "auto": exact search (Flat) below RAG_FAISS_IVF_MIN_VECTORS chunks, an inverted file (IVF) above it
# (retrained as the collection grows); any other value is a FAISS factory string used as given.
FAISS_INDEX_FACTORY = env.str("RAG_FAISS_INDEX_FACTORY", default="auto")
FAISS_IVF_MIN_VECTORS = env.int("RAG_FAISS_IVF_MIN_VECTORS", default=10_000)
FAISS_NPROBE = env.int("RAG_FAISS_NPROBE", default=0)  # IVF lists scanned per query; 0 = one in 16, at least 64
SEARCH_TOP_K = env.int("RAG_SEARCH_TOP_K", default=5)
# Hybrid search: BM25 over chunk texts (and file names) adds its candidates and, weighted, its scores
# (scaled so the query's best BM25 match has 1) to the vector ranking (retrieval/lexical.py, ranking.py).
# Measured offline (bench data, our chunks): 10-Q hit@5 0.903 -> 0.933, MRR 0.643 -> 0.694 at 0.1.
SEARCH_HYBRID = env.bool("RAG_SEARCH_HYBRID", default=True)
SEARCH_LEXICAL_WEIGHT = env.float("RAG_SEARCH_LEXICAL_WEIGHT", default=0.1)
# Candidates taken from each ranking (vector, BM25) before weighting and page ranking.
SEARCH_DEPTH = env.int("RAG_SEARCH_DEPTH", default=100)
# Pages as the ranking unit: a page scores its best chunk plus RAG_SEARCH_PAGE_NEIGHBOURS times the best
# chunk of the page before or after it; passages are each page's best chunk, best page first
# (RAG_SEARCH_PAGES=0: chunks in score order). Neighbours measured worse on FinanceBench: 0 by default.
SEARCH_PAGES = env.bool("RAG_SEARCH_PAGES", default=True)
SEARCH_PAGE_NEIGHBOURS = env.float("RAG_SEARCH_PAGE_NEIGHBOURS", default=0.0)
# How much the question's similarity to a chunk's document card (file name, opening words) adds to the
# chunk's own similarity when ranking; 0 ranks by chunk similarity alone.
SEARCH_DOCUMENT_WEIGHT = env.float("RAG_SEARCH_DOCUMENT_WEIGHT", default=0.5)

# Answer generation (see llm/generators). The embedded default, extractive, answers with the passages' own
# sentences, each cited (a laptop CPU answers in well under a second); llamacpp runs the bundled SmolLM2 on
# the CPU; transformers runs 4-bit Mistral-7B-Instruct on a GPU; openai calls an OpenAI-compatible server.
# RAG_LLM_BACKEND is one of these names or the dotted path of a generator class.
LLM_BACKENDS = {
    "extractive": "llm.generators.extractive.ExtractiveGenerator",
    "transformers": "llm.generators.hf.TransformersGenerator",
    "llamacpp": "llm.generators.llamacpp.LlamaCppGenerator",
    "openai": "llm.generators.openai_compat.OpenAICompatGenerator",
}
LLM_BACKEND = env.str("RAG_LLM_BACKEND", default="extractive")
LLM_OPTIONS: dict[str, Any] = env.json("RAG_LLM_OPTIONS", default={})
LLM_MAX_NEW_TOKENS = env.int("RAG_LLM_MAX_NEW_TOKENS", default=384)
LLM_TEMPERATURE = env.float("RAG_LLM_TEMPERATURE", default=0.1)
LLM_GUARDRAIL = env.bool("RAG_LLM_GUARDRAIL", default=True)
# LoRA adapters of the transformers backend: every folder here is loaded by the gpu worker under its
# name (`manage.py lora_train` writes here); a collection names the one that answers it.
LLM_ADAPTERS_DIR = Path(env.str("RAG_LLM_ADAPTERS_DIR", default=str(DATA_DIR / "adapters")))
ANSWER_TOP_K = env.int("RAG_ANSWER_TOP_K", default=5)
ANSWER_MIN_SCORE = env.float("RAG_ANSWER_MIN_SCORE", default=0.25)
ANSWER_REWRITE_WITH_LLM = env.bool("RAG_ANSWER_REWRITE_WITH_LLM", default=True)
# The gpu worker's pool (scripts/serve.py): the transformers backend batches concurrent questions on the GPU,
# so its worker takes RAG_GPU_CONCURRENCY of them at once (threads); others answer one at a time (solo).
GPU_CONCURRENCY = env.int("RAG_GPU_CONCURRENCY", default=32)
GPU_POOL = env.str("RAG_GPU_POOL", default="threads" if LLM_BACKEND == "transformers" else "solo")

# Grounding scorer (see llm/grounding): one of these names or the dotted path of a scorer class.
GROUNDING_SCORERS = {
    "lexical-embedding": "llm.grounding.scorers.LexicalEmbeddingScorer",
    "llm-judge": "llm.grounding.judge.LlmJudgeScorer",
}
GROUNDING_SCORER = env.str("RAG_GROUNDING_SCORER", default="lexical-embedding")
GROUNDING_THRESHOLD: float | None = env.float("RAG_GROUNDING_THRESHOLD", default=None)
GROUNDING_OPTIONS: dict[str, Any] = env.json("RAG_GROUNDING_OPTIONS", default={})
# What a flagged answer gets: "annotate" (the badge and the unsupported sentences marked), "evidence" (also
# "What the documents say": the extractive answer over the same passages, shown under it), "withhold" (the
# evidence is shown instead of the flagged answer, and the API's stream holds tokens until grounding is
# known: for customer-facing bots). RAG_EXTRACTIVE_OPTIONS are the extractive backend's options wherever
# it is used (as the generator, or for the evidence).
GROUNDING_POLICIES = ("annotate", "evidence", "withhold")
GROUNDING_POLICY = env.str("RAG_GROUNDING_POLICY", default="evidence")
if GROUNDING_POLICY not in GROUNDING_POLICIES:
    raise ImproperlyConfigured(
        f"RAG_GROUNDING_POLICY={GROUNDING_POLICY!r}: use one of {', '.join(GROUNDING_POLICIES)}"
    )
EXTRACTIVE_OPTIONS: dict[str, Any] = env.json("RAG_EXTRACTIVE_OPTIONS", default={})

# The pluggable parts, one dotted class path and its options per kind, built once per process by
# ragsite.components. Adding a backend is one file and one value here.
# OCR: Tesseract with Latin-script models (keeps accents); it falls back to the bundled RapidOCR, with a
# warning, where the tesseract-ocr packages are not installed (scripts/system-deps.sh installs them).
OCR_ENGINE = env.str("RAG_OCR_ENGINE", default="ingestion.ocr.TesseractOcrEngine")
OCR_LANGUAGES = env.str("RAG_OCR_LANGUAGES", default="eng+fra+deu+spa")

COMPONENTS: dict[str, dict[str, Any]] = {
    "embedder": {
        "class": EMBEDDER,
        "options": {"model": EMBEDDER_MODEL, "threads": EMBED_THREADS, "quantize": EMBED_QUANTIZE},
    },
    "generator": {
        "class": LLM_BACKENDS.get(LLM_BACKEND, LLM_BACKEND),
        # The transformers worker loads the adapters `manage.py lora_train` saved, unless the options say where.
        "options": {"adapters_dir": str(LLM_ADAPTERS_DIR), **LLM_OPTIONS} if LLM_BACKEND == "transformers"
        else {**EXTRACTIVE_OPTIONS, **LLM_OPTIONS} if LLM_BACKEND == "extractive" else LLM_OPTIONS,
    },
    "scorer": {
        "class": GROUNDING_SCORERS.get(GROUNDING_SCORER, GROUNDING_SCORER),
        "options": {"threshold": GROUNDING_THRESHOLD, **GROUNDING_OPTIONS},
    },
    "ocr": {"class": OCR_ENGINE, "options": {"languages": OCR_LANGUAGES} if OCR_ENGINE.endswith(".TesseractOcrEngine") else {}},
}
# One parser per file type (ingestion/parsers), picked by the media type sniffed from a file's bytes.
PARSERS: list[dict[str, Any]] = [
    {"class": "ingestion.parsers.pdf.PdfParser", "options": {"ocr": PDF_OCR, "max_pages": MAX_PDF_PAGES, "tables": PDF_TABLES}},
    {"class": "ingestion.parsers.docx.DocxParser", "options": {}},
    {"class": "ingestion.parsers.html.HtmlParser", "options": {}},
    {"class": "ingestion.parsers.markdown.MarkdownParser", "options": {}},
    {"class": "ingestion.parsers.plaintext.PlainTextParser", "options": {}},
]

# Models ship inside packages or sit in local folders: no library may reach for a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1" if env.bool("RAG_HF_OFFLINE", default=True) else "0")

# The audit trail (audit/): records older than this many days are deleted by `manage.py audit_purge`
# (0 keeps them forever). An ask is recorded with its answer id and collection; its question text only
# when RAG_AUDIT_QUESTIONS=1 (questions are the askers' data).
AUDIT_RETENTION_DAYS = env.int("RAG_AUDIT_RETENTION_DAYS", default=365)
AUDIT_QUESTIONS = env.bool("RAG_AUDIT_QUESTIONS", default=False)

# Prometheus scrapes /metrics with this bearer token (staff sessions may read it too); '' = staff only.
METRICS_TOKEN = env.str("RAG_METRICS_TOKEN", default="")

# REST API for support bots (api/). An answer not ready within the timeout is a 504 naming its id, so the
# client can fetch it later; more answers waiting than RAG_API_MAX_QUEUE is a 503 at once, not a hang.
API_ANSWER_TIMEOUT = env.float("RAG_API_ANSWER_TIMEOUT", default=120.0)
API_GROUNDING_WAIT = env.float("RAG_API_GROUNDING_WAIT", default=15.0)  # after the answer; then grounding: null
API_MAX_QUEUE = env.int("RAG_API_MAX_QUEUE", default=32)
API_BUSY_RETRY_AFTER = env.int("RAG_API_BUSY_RETRY_AFTER", default=10)
API_MAX_BODY_BYTES = env.int("RAG_API_MAX_BODY_BYTES", default=256 * 1024)  # JSON; uploads: MAX_UPLOAD_BYTES
API_RATE_LIMIT_PER_MINUTE = env.int("RAG_API_RATE_LIMIT_PER_MINUTE", default=60)  # default for new keys
API_LOG_QUESTIONS = env.bool("RAG_API_LOG_QUESTIONS", default=False)  # questions are customer data: opt in
# Rate-limit counters must be shared by every web process: Redis when there is one. LocMem is per process,
# which is right only for the single-process embedded default.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "rag"}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"event": {"()": "ragsite.logs.EventFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "event"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "faiss.loader": {"level": "WARNING"},
    },
}
