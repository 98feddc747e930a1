from django.urls import path

from subscriptions import views

urlpatterns = [
    path("account/subscriptions/<str:token>/", views.manage, name="subscriptions-manage"),
    path(
        "account/subscriptions/<str:token>/<int:pk>/card/",
        views.card,
        name="subscriptions-card",
    ),
    path(
        "account/subscriptions/<str:token>/<int:pk>/confirm/",
        views.confirm,
        name="subscriptions-confirm",
    ),
    path(
        "account/subscriptions/<str:token>/<int:pk>/<str:action>/",
        views.change,
        name="subscriptions-change",
    ),
]
