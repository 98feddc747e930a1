"""The platform's own pages on the public schema."""

from django.shortcuts import render


def platform_landing(request):
    # Creators are not listed publicly: who sells here is theirs to tell.
    return render(request, "core/landing.html")
