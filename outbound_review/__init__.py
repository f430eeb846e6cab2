"""The outbound-review gate: automatic disclosure checks, the human review queue, and the
release of signed artifacts. Nothing leaves unreviewed."""

from outbound_review._rules import RULES, CheckParameters, ResultEvidence, Rule, RuleOutcome
from outbound_review.checks import CheckReport, round_counts, run_checks, suppress
from outbound_review.describe import describe_release
from outbound_review.differencing import DifferencingFinding, ReleaseDescriptor, ReleaseIndex
from outbound_review.errors import ReleaseInvalid, ReviewError, ReviewRefused
from outbound_review.gate import Gate, Release, SourceDataset, Submission, evidence_from
from outbound_review.queue import ReviewItem, ReviewQueue
from outbound_review.release import verify_release, write_release

__all__ = [
    "RULES",
    "CheckParameters",
    "CheckReport",
    "DifferencingFinding",
    "Gate",
    "Release",
    "ReleaseDescriptor",
    "ReleaseIndex",
    "ReleaseInvalid",
    "ResultEvidence",
    "ReviewError",
    "ReviewItem",
    "ReviewQueue",
    "ReviewRefused",
    "Rule",
    "RuleOutcome",
    "SourceDataset",
    "Submission",
    "describe_release",
    "evidence_from",
    "round_counts",
    "run_checks",
    "suppress",
    "verify_release",
    "write_release",
]
