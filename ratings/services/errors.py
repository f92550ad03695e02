"""Why a panelist's request was refused; each carries a message fit to show them."""

from __future__ import annotations

from evalsite.errors import ServiceError


class RatingRefused(ServiceError):
    """Base: the request is refused and nothing was written."""


class StudyNotOpen(RatingRefused):
    status_code = 403


class LinkRevoked(RatingRefused):
    status_code = 403


class NotAssigned(RatingRefused):
    status_code = 404


class AlreadyAnswered(RatingRefused):
    status_code = 409


class AnswerLocked(RatingRefused):
    """An answer that can no longer be changed (too old, a skip, or not among the last few)."""

    status_code = 409


class ItemExpired(RatingRefused):
    status_code = 409


class InvalidScores(RatingRefused):
    status_code = 400


class StudySetupError(RatingRefused):
    """A study can't be created or opened as asked (staff-facing)."""


class ShareLinkFull(RatingRefused):
    """The shared link minted the most panelists the study allows (Study.share_max_panelists)."""

    status_code = 403


class TooManyRequests(RatingRefused):
    """A rate limit (issue 12): too many requests of this kind from this client, link or study."""

    status_code = 429
