"""Model fields with a security job of their own."""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from encrypted_fields.fields import EncryptedCharField


class SealedCharField(EncryptedCharField):
    """A secret we must be able to read back (an HMAC signing key), encrypted at rest.

    django-fernet-encrypted-fields stores Fernet tokens (AES-128-CBC + HMAC-SHA256) under keys
    derived from SECRET_KEY and SALT_KEY; SECRET_KEY_FALLBACKS keep older rows readable after
    a key rotation. Unlike the library's field, a value that does not decrypt is an error, not
    the ciphertext handed on as if it were the secret (which would sign with garbage, quietly).
    """

    def get_prep_value(self, value):
        # The library's goes through CharField.get_prep_value, which calls to_python on the
        # clear value: with a strict to_python that would try to decrypt it.
        value = models.Field.get_prep_value(self, value)
        if value:
            return self.f.encrypt(str(value).encode("utf-8")).decode("utf-8")
        return None

    def to_python(self, value):
        if value is None or not isinstance(value, str) or hasattr(self, "_already_decrypted"):
            return value
        try:
            return self.f.decrypt(value.encode("utf-8")).decode("utf-8")
        except InvalidToken:
            raise ImproperlyConfigured(
                f"{self.model.__name__}.{self.name} does not decrypt with the configured keys: "
                "was SECRET_KEY rotated without keeping the old one in SECRET_KEY_FALLBACKS, "
                "or SALT_KEY changed?"
            ) from None
