"""The enclave: the DuckDB store of raw city data, its catalog, the SQL policy check,
mock data, and job execution in isolated worker processes. Never returns raw rows."""

__all__: list[str] = []
