"""The outbound-review gate: automatic disclosure checks, the human review queue, and the
release of signed artifacts. Nothing leaves unreviewed."""

__all__: list[str] = []
