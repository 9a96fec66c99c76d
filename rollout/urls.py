from django.urls import path

from rollout import views

app_name = "rollout"
urlpatterns = [
    path("", views.plan_list, name="plans"),
]
