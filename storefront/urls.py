from django.urls import path

from storefront import views, views_brand, views_orders, views_upsell

urlpatterns = [
    path("", views.store_index, name="store-index"),
    path("p/<slug:slug>/", views.product_detail, name="product-detail"),
    path("brand/<str:name>.css", views_brand.brand_stylesheet, name="brand-stylesheet"),
    path("m/img/<str:name>", views_brand.media_image, name="media-image"),
    path("checkout/<slug:slug>/", views.checkout_page, name="checkout"),
    path("checkout/<slug:slug>/quote", views.checkout_quote, name="checkout-quote"),
    path("checkout/<slug:slug>/start", views.checkout_start, name="checkout-start"),
    path("o/<str:token>/pay", views.checkout_pay, name="checkout-pay"),
    path("o/<str:token>/confirm", views.checkout_confirm, name="checkout-confirm"),
    path("o/<str:token>/next", views.order_next, name="order-next"),
    path("o/<str:token>/thanks", views_orders.order_thanks, name="order-thanks"),
    path("o/<str:token>/", views_orders.order_page, name="order-page"),
    path("o/<str:token>/invoices/<int:number>.pdf", views_orders.invoice_pdf, name="invoice-pdf"),
    path(
        "o/<str:token>/credit-notes/<int:number>.pdf",
        views_orders.credit_note_pdf,
        name="credit-note-pdf",
    ),
    path("d/<str:signed>", views_orders.line_download, name="line-download"),
    path("purchases/", views_orders.purchases_request, name="purchases-request"),
    path("purchases/<str:signed>", views_orders.purchases_list, name="purchases-list"),
    path("o/<str:token>/offer", views_upsell.upsell_offer, name="upsell-offer"),
    path("o/<str:token>/offer/status", views_upsell.upsell_status, name="upsell-status"),
    path("o/<str:token>/offer/accept", views_upsell.upsell_accept, name="upsell-accept"),
    path("o/<str:token>/offer/decline", views_upsell.upsell_decline, name="upsell-decline"),
    path("o/<str:token>/offer/confirm", views_upsell.upsell_confirm, name="upsell-confirm"),
    path("o/<str:token>/offer/abandon", views_upsell.upsell_abandon, name="upsell-abandon"),
]

from storefront import views_followups  # noqa: E402

urlpatterns += [
    path("f/<str:signed>", views_followups.followup_offer, name="followup-offer"),
    path("f/<str:signed>/accept", views_followups.followup_accept, name="followup-accept"),
    path("u/<str:signed>", views_followups.followup_unsubscribe, name="followup-unsubscribe"),
    path("r/<str:signed>", views_followups.checkout_recover, name="checkout-recover"),
]

from storefront import views_privacy  # noqa: E402

urlpatterns += [
    path("privacy/<str:signed>", views_privacy.privacy_page, name="privacy-page"),
]
