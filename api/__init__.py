"""The partner API's shared parts: errors, auth plumbing, idempotency, filters and pagination.

Every app's `api/` views import from here; only `api.idempotency` and the key authenticator in
`partners.api.auth` touch partners' tables, so analytics and offers never import partners."""
