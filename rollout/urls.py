from django.urls import path

from rollout import emergency_views, views

app_name = "rollout"
urlpatterns = [
    path("", views.plan_list, name="plans"),
    path("new", views.plan_new, name="plan_new"),
    path("preview", views.plan_preview, name="plan_preview"),
    path("emergency-stop", emergency_views.emergency_stop, name="emergency_stop"),
    path("emergency-stop/lift", emergency_views.emergency_lift, name="emergency_lift"),
    path("<int:pk>/", views.plan_detail, name="plan"),
    path("<int:pk>/cards", views.plan_cards, name="plan_cards"),
    path("<int:pk>/evidence.zip", views.evidence_pack, name="evidence_pack"),
    path("<int:pk>/edit", views.plan_edit, name="plan_edit"),
    path("<int:pk>/pause", views.plan_pause, name="plan_pause"),
    path("<int:pk>/resume", views.plan_resume, name="plan_resume"),
    path("<int:pk>/abort", views.plan_abort, name="plan_abort"),
    path("<int:pk>/waves/<int:index>/", views.wave_detail, name="wave"),
    path("<int:pk>/waves/<int:index>/panel", views.wave_panel, name="wave_panel"),
    path("<int:pk>/waves/<int:wave_id>/approve", views.wave_approve, name="wave_approve"),
    path("<int:pk>/waves/<int:wave_id>/reject", views.wave_reject, name="wave_reject"),
    path("<int:pk>/waves/<int:wave_id>/roll-back", views.wave_roll_back, name="wave_roll_back"),
    path("<int:pk>/targets/<int:target_id>/retry", views.target_retry, name="target_retry"),
    path("<int:pk>/targets/<int:target_id>/skip", views.target_skip, name="target_skip"),
    path(
        "<int:pk>/targets/<int:target_id>/roll-back",
        views.target_roll_back,
        name="target_roll_back",
    ),
    path(
        "<int:pk>/targets/<int:target_id>/mark-done",
        views.target_mark_done,
        name="target_mark_done",
    ),
]
