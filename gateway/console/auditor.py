"""The auditor's pages (the authority sees them too): the ledger explorer, checkpoints and
proofs to download, the whole-log verification with its progress, and activity charts.
Everything comes from :mod:`gateway.audit`, the functions behind ``/v1/ledger``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from gateway import audit
from gateway.console import charts, forms, i18n
from gateway.console.access import PREFIX, Post, Signed, state
from gateway.console.pages import render
from gateway.control import scenarios
from gateway.errors import InvalidRequest

router = APIRouter(prefix="/audit", include_in_schema=False)
PAGE_ENTRIES = 50
SCAN = 20_000
"""How many entries one page of the explorer looks through for its matches."""
Filter = Annotated[str | None, Query(max_length=200)]


@router.get("/ledger")
def ledger(
    request: Request,
    viewer: Signed,
    start: Annotated[int, Query(ge=0)] = 0,
    action: Filter = None,
    actor: Filter = None,
    subject: Filter = None,
    since: Filter = None,
    until: Filter = None,
) -> HTMLResponse:
    """Entries matching the filters, a page at a time, with where to go on from."""
    query = audit.EntryQuery(
        action=action or None,
        actor=actor or None,
        subject=subject or None,
        since=forms.moment(since, "since"),
        until=forms.moment(until, "until"),
    )
    found = audit.entries(
        viewer.platform, viewer.principal, start=start, query=query, scan=SCAN, limit=PAGE_ENTRIES
    )
    filters = {"action": action, "actor": actor, "subject": subject, "since": since, "until": until}
    return render(request, "audit/ledger.html", {"page": found, "filters": filters})


@router.get("/ledger/{index}")
def entry(request: Request, index: int, viewer: Signed) -> HTMLResponse:
    """One entry: its canonical JSON, leaf hash and fields, and its inclusion proof to download."""
    found = audit.entry(viewer.platform, viewer.principal, index)
    pretty = json.dumps(found.to_json(), indent=2, ensure_ascii=False, sort_keys=True)
    context = {"entry": found, "canonical": found.raw.decode("utf-8"), "pretty": pretty}
    return render(request, "audit/entry.html", context)


@router.get("/checkpoint")
def checkpoint(request: Request, viewer: Signed) -> HTMLResponse:
    """The latest signed checkpoint, every one kept, the log's key and the proof forms."""
    latest = audit.latest(viewer.platform, viewer.principal)
    kept = audit.kept(viewer.platform, viewer.principal)
    context = {
        "latest": latest,
        "kept": kept,
        "size": viewer.platform.ledger.size,
        "public_key": viewer.platform.ledger.public_key().vkey,
    }
    return render(request, "audit/checkpoint.html", context)


@router.post("/checkpoint")
def sign(post: Post) -> Response:
    """Sign a checkpoint over every entry now (and keep it)."""
    audit.checkpoint(post.viewer.platform, post.viewer.principal)
    post.viewer.session.flash = "flash.signed"
    return RedirectResponse(f"{PREFIX}/audit/checkpoint", status_code=303)


@router.get("/checkpoints/{size}")
def kept_checkpoint(size: int, viewer: Signed) -> Response:
    """A kept checkpoint as the signed note, to save for a later consistency proof."""
    for found in audit.kept(viewer.platform, viewer.principal):
        if found.size == size:
            return _download(found.note, f"checkpoint-{size}.note", "text/plain; charset=utf-8")
    raise InvalidRequest("G-INPUT", f"no checkpoint was signed here at size {size}")


@router.get("/public-key")
def public_key(viewer: Signed) -> Response:
    """The log's verifier key (a vkey line), for ``veilbox ledger verify-proof --public-key``;
    public, as ``/v1/keys`` is."""
    return _download(
        viewer.platform.ledger.public_key().vkey + "\n", "ledger.vkey", "text/plain; charset=utf-8"
    )


@router.get("/proofs/inclusion")
def inclusion(index: Annotated[int, Query(ge=0)], viewer: Signed) -> Response:
    """An inclusion proof bundle for entry ``index`` against a fresh checkpoint."""
    bundle = audit.inclusion(viewer.platform, viewer.principal, index)
    return _bundle(bundle, f"inclusion-{index}.json")


@router.post("/proofs/consistency")
def consistency(post: Post) -> Response:
    """A consistency bundle between two kept checkpoints, or from a pasted one to now."""
    form = post.form
    # Browsers send a textarea's lines with CRLF; a signed note's lines end with LF.
    saved = forms.text(form, "old_checkpoint", max_chars=10_000, required=False).replace("\r\n", "\n")
    if saved:
        bundle = audit.consistency(post.viewer.platform, post.viewer.principal, saved + "\n")
    else:
        old = forms.integer(form, "old_size", low=0, high=2**62)
        new = forms.integer(form, "new_size", low=0, high=2**62)
        bundle = audit.consistency_between(post.viewer.platform, post.viewer.principal, old, new)
    return _bundle(bundle, f"consistency-{bundle['old_size']}-{bundle['new_size']}.json")


@router.get("/verify")
def verify_page(request: Request, viewer: Signed) -> HTMLResponse:
    """What verifying the whole log checks, and the button that starts it (to those who may)."""
    audit.verifier(viewer.platform, viewer.principal)
    return render(request, "audit/verify.html", {"run": None, "size": viewer.platform.ledger.size})


@router.post("/verify")
def verify_start(request: Request, post: Post) -> Response:
    """Start verifying the whole log in the background; its page shows the progress."""
    run = state(request).verifications.start(
        post.viewer.principal.user_id, audit.verifier(post.viewer.platform, post.viewer.principal)
    )
    return RedirectResponse(f"{PREFIX}/audit/verify/{run.id}", status_code=303)


@router.get("/verify/{run_id}")
def verify_run(request: Request, run_id: str, viewer: Signed) -> HTMLResponse:
    """A verification: its progress while it runs (the script polls), its report when done."""
    run = state(request).verifications.get(viewer.principal.user_id, run_id)
    return render(request, "audit/verify.html", {"run": run, "size": viewer.platform.ledger.size})


@router.get("/verify/{run_id}/progress")
def verify_progress(request: Request, run_id: str, viewer: Signed) -> JSONResponse:
    """A verification's progress as JSON, for the page's script."""
    return JSONResponse(state(request).verifications.get(viewer.principal.user_id, run_id).to_json())


@router.get("/activity")
def activity(request: Request, viewer: Signed) -> HTMLResponse:
    """Jobs per day, refusals by rule and releases by scenario, as charts and tables."""
    t = i18n.translator(i18n.language(request))
    found = audit.activity(viewer.platform, viewer.principal)
    names = {s.id: s.name for s in scenarios.list_scenarios(viewer.platform.control, viewer.principal)}
    releases = [(names.get(k, k), float(v)) for k, v in found.releases_by_scenario.items()]
    empty = t("chart.empty")
    drawn = {
        "jobs": charts.columns(
            [(d.isoformat(), float(n)) for d, n in found.jobs_per_day],
            title=t("activity.jobs"),
            every=7,
            empty=empty,
        ),
        "refusals": charts.bars(
            [(k, float(v)) for k, v in found.refusals_by_rule.items()],
            title=t("activity.refusals"),
            empty=empty,
        ),
        "releases": charts.bars(releases, title=t("activity.releases"), empty=empty),
    }
    return render(request, "audit/activity.html", {"found": found, "charts": drawn, "releases": releases})


def _bundle(bundle: dict[str, Any], filename: str) -> Response:
    text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    return _download(text, filename, "application/json")


def _download(text: str, filename: str, media: str) -> Response:
    return Response(
        text.encode("utf-8"),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
