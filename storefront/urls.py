from django.urls import path

from storefront import views

urlpatterns = [
    path("", views.store_index, name="store-index"),
    path("p/<slug:slug>/", views.product_detail, name="product-detail"),
]
