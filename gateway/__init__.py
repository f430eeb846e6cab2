"""The only way in: the HTTP API, the ``veilbox`` command line, identities and roles,
authorizations and scenarios."""

__all__: list[str] = []
