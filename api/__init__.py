"""The partner API's shared parts: errors, auth plumbing, filters and pagination, the schema.

Every app's `api/` views import from here. Nothing here imports partners (idempotent writes,
which need partners' records, are `partners.api.idempotency`), so analytics' and offers' API
views never import partners and the package sits below analytics in the layers."""
