"""Errors the buyer sees: a refusal with an HTTP status, a title and a readable message."""


class BuyerRefused(Exception):
    """Something a buyer asked for was refused; nothing was charged or changed."""

    def __init__(self, status: int, title: str, message: str):
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


class CheckoutError(ValueError):
    """Bad input or a refused payment, with the form field it belongs to."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message
