"""What the store holds on a buyer: export it, erase it (pseudonymise), prune what is kept too long.

- `registry` declares, for every model that can hold something about a buyer, which rows are
  theirs and what an erasure does to them (or why the rows are kept as they are), and lists
  the models that look personal but are not a buyer's (with the reason). A test walks every
  installed model: one with an email, customer, visitor or payload field that is neither
  registered nor exempted fails the suite, so a new table cannot be forgotten.
- `services` takes requests (store admin, partner API, the buyer's signed link), runs them
  (`privacy_request_process`, a task) and prunes on schedule (`retention_prune`, beat).

Erasure keeps the books: ledger entries, charge attempts, refunds, order lines and the
order's country evidence stay as they are (tax law asks for them for years), referring to a
customer row whose address is now `erased-…@erased.invalid`. What identified the person goes:
the address everywhere it was copied (gateway customer, audit details, stored webhook
payloads, API replay records, earlier export documents), the browser's visitor id, the
referrer, the saved cards.

The event log and the audit trail are append-only (a trigger refuses UPDATE and DELETE).
Their triggers have one narrow exception (analytics 0006, audit 0003): inside a transaction
that ran `SET LOCAL storefront.erasure = 'on'` (only `erasure_scope` does), an UPDATE may
change the personal columns (events: `visitor_id`, `properties`; audit: `object_repr`,
`summary`, `changes`) and nothing else. DELETE stays refused. A side table of redactions
would leave the address in the row it was meant to erase; dropping the trigger for the
erasure would open the table to every writer for that moment. See docs/security.md.

Logs: the logging filter writes a buyer's address as a keyed digest (core.logging), so no log
line we keep holds one and an erasure has nothing to rewrite there.
"""
