"""Tax: who decides the rate (`providers`), on what evidence of the buyer's location
(`evidence`), and business buyers' VAT IDs (`vat`).

storefront.pricing asks `tax_provider()` for a line's rate; today's default is the creator's
TaxRate table (`TableTaxProvider`). Another engine (Stripe Tax, a tax service) plugs in by
implementing `TaxProvider` and naming the class in TAX_PROVIDER. The order keeps the evidence
and the B2B decision (`Order.tax_evidence`, `vat_id`, `reverse_charge`), and every later line
of the order (post-purchase offers, cross-sells, renewals) is taxed from the order's evidence,
not asked again.
"""
