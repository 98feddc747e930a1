"""django-tenants' PostgreSQL backend with a lazy search_path (see base.py)."""
