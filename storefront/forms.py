"""Checkout form: parses and validates what the buyer sends."""

from django import forms

from storefront.countries import COUNTRIES


class CheckoutForm(forms.Form):
    email = forms.EmailField(
        label="Email",
        max_length=254,
        error_messages={"invalid": "Enter a valid email address, like name@example.com."},
    )
    country = forms.ChoiceField(
        label="Country", choices=sorted(COUNTRIES.items(), key=lambda c: c[1]), initial="US"
    )
    region = forms.CharField(label="State or region (optional)", max_length=10, required=False)
    vat_id = forms.CharField(
        label="VAT number (businesses in the EU, optional)", max_length=30, required=False
    )
    bump = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    add_bump = forms.BooleanField(required=False)
    # Unticked until the buyer ticks it: consent to keep the card is never assumed (docs).
    save_card = forms.BooleanField(required=False, initial=False)
    # The buyer's consent to abandoned-checkout reminders (checkout.REMINDER_TEXT); off unless
    # they tick it.
    remind = forms.BooleanField(required=False)
    coupon = forms.CharField(label="Coupon code", max_length=40, required=False)
    # The signed reminder link the buyer came back through (storefront.services.followups).
    recovery = forms.CharField(max_length=400, required=False, widget=forms.HiddenInput)
    expected_total = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def bump_offer_id(self) -> int | None:
        return self.cleaned_data.get("bump") if self.cleaned_data.get("add_bump") else None


class QuoteForm(forms.Form):
    country = forms.ChoiceField(choices=list(COUNTRIES.items()))
    region = forms.CharField(max_length=10, required=False)
    coupon = forms.CharField(max_length=40, required=False)
    bump = forms.IntegerField(required=False, min_value=1)
    add_bump = forms.BooleanField(required=False)


class PurchasesLinkForm(forms.Form):
    email = forms.EmailField(
        label="Email you bought with",
        max_length=254,
        error_messages={"invalid": "Enter a valid email address, like name@example.com."},
    )
