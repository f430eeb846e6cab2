"""De-identification and privacy computing: PII detection, pseudonymization, k-anonymity,
differential privacy with budget accounting, and private set intersection. Holds no
policy decisions of its own."""

__all__: list[str] = []
