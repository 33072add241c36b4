"""Pydantic models of libnetwork's remote plugin protocols, one request and one response per method.

Field names are Python's; aliases carry Docker's exact spelling (``NetworkID``, ``IPv4Data``).
Unknown fields are ignored so that newer engines can add fields without breaking us, but a field we
know must have the right type: a wrong type is a malformed request (HTTP 400).
"""
