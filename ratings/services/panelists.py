"""Panelists: invite links, consent, revocation and exclusion."""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import Panelist, Study, StudyStatus
from ..selectors import panelist_items_estimate
from ..signals import results_inputs_changed_on_commit
from .errors import LinkRevoked, ShareLinkFull, StudyNotOpen, StudySetupError
from .pool import assignments_release_for_panelist

PSEUDONYM_MAX = 64


def panelist_create(*, study: Study, pseudonym: str | None = None, is_simulated: bool = False) -> Panelist:
    """A new panelist with an unguessable token; a random pseudonym unless one is given."""
    if pseudonym is not None:
        pseudonym = pseudonym.strip()
        if not pseudonym or len(pseudonym) > PSEUDONYM_MAX:
            raise StudySetupError(f"A pseudonym needs 1 to {PSEUDONYM_MAX} characters.")
        try:
            with transaction.atomic():
                return Panelist.objects.create(study=study, pseudonym=pseudonym, is_simulated=is_simulated)
        except IntegrityError:
            raise StudySetupError(f"The pseudonym {pseudonym!r} is taken in this study.") from None
    for _ in range(10):
        try:
            with transaction.atomic():
                return Panelist.objects.create(
                    study=study, pseudonym=f"panelist-{secrets.token_hex(3)}", is_simulated=is_simulated
                )
        except IntegrityError:
            continue
    raise StudySetupError("Could not find a free pseudonym; try again.")


def panelist_from_share(*, study: Study) -> Panelist:
    """The shared study link mints a panelist on first visit (only while the study is open)."""
    if study.status != StudyStatus.OPEN:
        raise StudyNotOpen("This study is not open for rating.")
    with transaction.atomic():
        # the study row lock makes the cap exact under concurrent visitors
        Study.objects.select_for_update().filter(pk=study.pk).values_list("pk", flat=True).first()
        minted = Panelist.objects.filter(study=study, from_share=True).count()
        if minted >= study.share_max_panelists:
            raise ShareLinkFull("This study has all the panelists it asked for through this link. Thank you!")
        panelist = panelist_create(study=study)
        Panelist.objects.filter(pk=panelist.pk).update(from_share=True)
        panelist.from_share = True
    return panelist


def panelist_check(*, panelist: Panelist) -> None:
    """Raise unless this panelist may rate now (link live, study open)."""
    if panelist.revoked_at is not None:
        raise LinkRevoked("This link has been revoked. Please contact the study organiser.")
    if panelist.study.status != StudyStatus.OPEN:
        if panelist.study.status == StudyStatus.CLOSED:
            raise StudyNotOpen("This study is closed. Thank you for your help!")
        raise StudyNotOpen("This study has not opened yet. Please come back later.")


def panelist_consent(*, panelist: Panelist) -> Panelist:
    """Consent given: record it and the number of items they are told to expect (a total that never shrinks)."""
    if panelist.consented_at is None:
        panelist.consented_at = timezone.now()
        panelist.planned_items = panelist_items_estimate(panelist=panelist)
        panelist.save(update_fields=["consented_at", "planned_items"])
    return panelist


def panelist_revoke(*, panelist: Panelist) -> Panelist:
    """The link stops working; open work returns to the pool; ratings given so far stay."""
    with transaction.atomic():
        if panelist.revoked_at is None:
            panelist.revoked_at = timezone.now()
            panelist.save(update_fields=["revoked_at"])
        assignments_release_for_panelist(panelist=panelist)
    return panelist


def panelist_exclude(*, panelist: Panelist, excluded: bool = True, reason: str = "") -> Panelist:
    """Excluded ratings leave the score table (RESULTS filters on it) but stay in exports, flagged."""
    panelist.excluded = excluded
    panelist.excluded_reason = reason.strip()[:200] if excluded else ""
    panelist.save(update_fields=["excluded", "excluded_reason"])
    results_inputs_changed_on_commit(study_id=panelist.study_id, reason="exclusion")
    return panelist
