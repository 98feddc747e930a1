"""Django's admin app with the store's own site (storefront/admin_site.py) as `admin.site`.

In INSTALLED_APPS in place of "django.contrib.admin"; its label and name are unchanged, so
django-tenants still finds "django.contrib.admin" in SHARED_APPS and TENANT_APPS."""

from django.contrib.admin.apps import AdminConfig


class StoreAdminConfig(AdminConfig):
    default_site = "storefront.admin_site.StoreAdminSite"
