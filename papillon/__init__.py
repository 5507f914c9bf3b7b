"""Papillon's formats: what crosses a boundary between the browser, the server and the laptop.

Nothing here imports Flask, so the offline staff scripts can use these modules on a
laptop that has only ``cryptography`` and ``PyNaCl`` installed.
"""
