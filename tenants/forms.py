"""The platform's sign-up form: shape only; `tenants.signup` decides what is acceptable."""

from django import forms


class SignupForm(forms.Form):
    email = forms.CharField(
        max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    password = forms.CharField(
        max_length=128,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    store_name = forms.CharField(max_length=120)
    subdomain = forms.CharField(max_length=63, help_text="Lower-case letters, digits and hyphens.")
    # Bot resistance: a field people never see (bots fill it) and the signed render time.
    website = forms.CharField(required=False, max_length=200)
    stamp = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)
