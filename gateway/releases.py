"""Released results as a service function: the files of a signed artifact, for users of the
submitting operator only, each download recorded in the ledger. The API and the console
call it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway import jobs
from gateway.control import Principal, Role
from gateway.control.identity import invisible, require_role
from gateway.errors import Conflict
from gateway.platform import Platform
from outbound_review.release import MANIFEST, SIGNATURE

MEDIA = {
    "result.csv": "text/csv",
    "result.parquet": "application/vnd.apache.parquet",
    "result.json": "application/json",
    MANIFEST: "application/json",
    SIGNATURE: "text/plain",
}
"""The files of a release and their media types."""


@dataclass(frozen=True)
class ReleaseFile:
    """A file of a release to send: where it is, its media type and the name to save it as."""

    path: Path
    media_type: str
    filename: str


def release_file(platform: Platform, principal: Principal, job_id: str, name: str) -> ReleaseFile:
    """A released artifact's file, recorded as ``release.downloaded``."""
    require_role(principal, {Role.OPERATOR, Role.DEVELOPER}, "downloading a released result")
    job = jobs.get_job(platform.control, principal, job_id)
    if name not in MEDIA:
        raise invisible("release file", name)
    if job.status != "released":
        raise Conflict("G-STATE", f"job {job_id} is {job.status}: only released results can be downloaded")
    path = platform.layout.releases / job_id / name
    if not path.is_file():
        raise Conflict("G-STATE", f"the release of job {job_id} has no {name}")
    platform.ledger.append(principal.user_id, "release.downloaded", job_id, {"file": name})
    return ReleaseFile(path, MEDIA[name], f"{job_id}-{name}")
