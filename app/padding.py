"""Replies padded to a whole number of blocks, so that a network observer cannot tell from their size
which page someone opened (a testimony form from a sign-on form) or which reply they received."""

from __future__ import annotations

from flask import Flask, Response, current_app

PADDED_TYPES = {"text/html", "application/json"}


def init_app(app: Flask) -> None:
    app.after_request(pad_response)


def pad_response(response: Response) -> Response:
    """Append spaces (white space after ``</html>`` or a JSON value means nothing) up to the next block."""
    block = current_app.config["PAPILLON_PAD_BYTES"]
    if block <= 0 or response.direct_passthrough or response.mimetype not in PADDED_TYPES:
        return response
    body = response.get_data()
    if body:
        response.set_data(body + b" " * (-len(body) % block))
    return response
