from django.urls import path

from chat import dashboard, feedback_views, views

urlpatterns = [
    path("", views.chat_page, name="chat"),
    path("c/<int:conversation_id>/", views.chat_page, name="conversation"),
    path("ask/", views.ask, name="ask"),
    path("answers/<int:answer_id>/", views.answer_detail, name="answer"),
    path("answers/<int:answer_id>/stream/", views.answer_stream, name="answer-stream"),
    path("answers/<int:answer_id>/feedback/", views.feedback, name="answer-feedback"),
    path("answers/<int:answer_id>/sources/<int:n>/", views.answer_source, name="answer-source"),
    path("passages/<int:chunk_id>/", views.passage, name="passage"),
    path("grounding/", dashboard.dashboard, name="dashboard"),
    path("grounding/data.json", dashboard.dashboard_data, name="dashboard-data"),
    path("metrics", dashboard.metrics, name="metrics"),
    path("feedback/", feedback_views.feedback_page, name="feedback"),
]
