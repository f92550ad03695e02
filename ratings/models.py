"""Studies, criteria, panelists, assignments and ratings."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

TIMEOUT_MINUTES_MAX = 24 * 60


def new_token() -> str:
    return secrets.token_urlsafe(24)


def new_ref() -> str:
    """An answer's id in panelist URLs: random, so nothing sequential reaches a panelist."""
    return secrets.token_urlsafe(12)


def new_shuffle() -> int:
    """A random rank fixed at creation: items of equal need are served in a random, indexable order."""
    return secrets.randbelow(2**31 - 1)


class StudyMode(models.TextChoices):
    SINGLE = "single", "single images"
    PAIR = "pair", "side-by-side pairs"
    BOTH = "both", "singles and pairs"


class StudyStatus(models.TextChoices):
    DRAFT = "draft", "draft"
    OPEN = "open", "open"
    CLOSED = "closed", "closed"


class AssignmentStrategy(models.TextChoices):
    BALANCED = "balanced", "balanced coverage (fewest ratings first)"
    ACTIVE = "active", "active (where a rating most shrinks the uncertainty that matters)"


class Estimand(models.TextChoices):
    """What a leaderboard interval is about (the names match ratings.results.crossed.ESTIMANDS)."""

    RATERS_RANDOM = "raters_random", "New prompts of this kind and new raters like these"
    THIS_PANEL = "this_panel", "New prompts of this kind, rated by this panel"


class Study(models.Model):
    name = models.CharField(max_length=200)
    sweep = models.ForeignKey("generation.Sweep", on_delete=models.PROTECT, related_name="studies")
    mode = models.CharField(max_length=8, choices=StudyMode.choices, default=StudyMode.BOTH)
    ratings_per_item = models.PositiveIntegerField(default=3, help_text="Ratings wanted per image (and per pair).")
    gold_enabled = models.BooleanField(default=True, help_text="Mix in known mismatches to check attention.")
    gold_share = models.FloatField(default=0.1)
    instructions = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=StudyStatus.choices, default=StudyStatus.DRAFT)
    results_public = models.BooleanField(
        default=False, help_text="Panelists may see the leaderboard once the study is closed."
    )
    assignment_strategy = models.CharField(
        max_length=16, choices=AssignmentStrategy.choices, default=AssignmentStrategy.BALANCED
    )
    assignment_timeout_minutes = models.PositiveIntegerField(
        default=15, validators=[MinValueValidator(1), MaxValueValidator(TIMEOUT_MINUTES_MAX)],
        help_text="An item not answered within this goes back to the pool (1 minute to 24 hours).",
    )
    share_max_panelists = models.PositiveIntegerField(
        default=200, validators=[MinValueValidator(1)],
        help_text="The most panelists the shared link may mint (invite links are not counted).",
    )
    items_per_panelist = models.PositiveIntegerField(
        default=0, help_text="Items one panelist is asked to rate (shown as progress n of m); 0 = no limit."
    )
    share_token = models.CharField(
        max_length=64, unique=True, null=True, blank=True,
        help_text="A shared link that mints a panelist on first visit; empty = invite links only.",
    )
    imported_from = models.CharField(
        max_length=255, blank=True, editable=False,
        help_text="File its ratings were imported from (import_ratings); empty for a study rated here.",
    )
    estimand = models.CharField(
        max_length=16, choices=Estimand.choices, default=Estimand.RATERS_RANDOM,
        help_text="What the leaderboard's intervals are about (both are computed; the page can switch).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"
        permissions = [  # staff roles (evalsite.access)
            ("manage_study", "Can manage studies (open, close, invite, share, criteria, panelists)"),
            ("view_results", "Can view study results (leaderboard, leaderboard CSV)"),
            ("export_ratings", "Can export raw ratings (ratings CSV)"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(ratings_per_item__gte=1), name="study_k_gte_1"),
            models.CheckConstraint(
                condition=models.Q(assignment_timeout_minutes__gte=1)
                & models.Q(assignment_timeout_minutes__lte=TIMEOUT_MINUTES_MAX),
                name="study_timeout_1min_24h",
            ),
            models.CheckConstraint(
                condition=models.Q(gold_share__gte=0) & models.Q(gold_share__lte=0.5), name="study_gold_share_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Criterion(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="criteria")
    key = models.SlugField(max_length=50)
    name = models.CharField(max_length=100)
    question = models.CharField(max_length=300)
    order = models.PositiveIntegerField(default=0)
    categories = models.JSONField(
        default=list, blank=True, help_text="Prompt categories it applies to; empty = all prompts."
    )
    text_prompts_only = models.BooleanField(
        default=False, help_text="Only prompts with expected text (or in one of the categories above)."
    )

    class Meta:
        ordering = ["study", "order", "id"]
        constraints = [models.UniqueConstraint(fields=["study", "key"], name="criterion_unique_key_per_study")]

    def __str__(self) -> str:
        return self.name


class Panelist(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="panelists")
    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    pseudonym = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    consented_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    excluded = models.BooleanField(default=False, help_text="Ratings leave the score table; kept in exports.")
    excluded_reason = models.CharField(max_length=200, blank=True)
    is_simulated = models.BooleanField(default=False)
    from_share = models.BooleanField(default=False, editable=False,
                                     help_text="Minted by the study's shared link (counted against its cap).")
    planned_items = models.PositiveIntegerField(
        null=True, blank=True, editable=False,
        help_text="Items this panelist was told to expect when they started (their progress total never shrinks).",
    )

    class Meta:
        ordering = ["study", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["study", "pseudonym"], name="panelist_unique_pseudonym_per_study")
        ]

    def __str__(self) -> str:
        return self.pseudonym


class AssignmentKind(models.TextChoices):
    SINGLE = "single", "single"
    PAIR = "pair", "pair"


class StudyItem(models.Model):
    """Something to be rated k times: one image, or two images of one prompt and seed (unordered).

    The counters are the concurrency guard: an assignment takes a slot (n_assigned + 1) while
    holding the row lock, and the check constraint makes "more than k" impossible in the database.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=8, choices=AssignmentKind.choices)
    first = models.ForeignKey("generation.Generation", on_delete=models.PROTECT, related_name="+")
    second = models.ForeignKey("generation.Generation", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.PROTECT, related_name="+")
    model_pair = models.CharField(max_length=64, help_text="Sorted model ids, for balancing pairs (never shown).")
    target = models.PositiveIntegerField(help_text="Ratings wanted (the study's k when the item was made).")
    n_assigned = models.PositiveIntegerField(default=0, help_text="Open + done assignments.")
    n_done = models.PositiveIntegerField(default=0)
    shuffle = models.PositiveIntegerField(default=new_shuffle, editable=False)

    class Meta:
        ordering = ["study", "id"]
        indexes = [
            models.Index(fields=["study", "n_assigned", "shuffle"], name="item_next_idx"),
            models.Index(fields=["study", "model_pair", "n_assigned", "shuffle"], name="item_next_in_group_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(n_assigned__lte=models.F("target")), name="item_assigned_lte_target"),
            models.CheckConstraint(condition=models.Q(n_done__lte=models.F("n_assigned")), name="item_done_lte_assigned"),
            models.CheckConstraint(
                condition=(models.Q(kind="single", second__isnull=True) | models.Q(kind="pair", second__isnull=False)),
                name="item_pair_has_second",
            ),
            models.UniqueConstraint(
                fields=["study", "first"], condition=models.Q(kind="single"), name="item_unique_single"
            ),
            models.UniqueConstraint(
                fields=["study", "first", "second"], condition=models.Q(kind="pair"), name="item_unique_pair"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} item {self.pk} ({self.n_done}/{self.target})"


class AssignmentStatus(models.TextChoices):
    OPEN = "open", "open"
    DONE = "done", "done"
    SKIPPED = "skipped", "skipped"
    EXPIRED = "expired", "expired"


class Assignment(models.Model):
    """One item shown to one panelist: a single image or a left/right pair."""

    ref = models.CharField(max_length=24, unique=True, default=new_ref, editable=False,
                           help_text="The id panelists see in URLs (never the sequential primary key).")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="assignments")
    panelist = models.ForeignKey(Panelist, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(
        StudyItem, null=True, blank=True, on_delete=models.PROTECT, related_name="assignments",
        help_text="Empty on gold items (they count toward no image's k).",
    )
    kind = models.CharField(max_length=8, choices=AssignmentKind.choices)
    left = models.ForeignKey("generation.Generation", on_delete=models.PROTECT, related_name="+")
    right = models.ForeignKey("generation.Generation", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    shown_prompt = models.ForeignKey(
        "prompts.Prompt", on_delete=models.PROTECT, related_name="+",
        help_text="The prompt shown; differs from the image's prompt on gold items.",
    )
    is_gold = models.BooleanField(default=False)
    status = models.CharField(max_length=8, choices=AssignmentStatus.choices, default=AssignmentStatus.OPEN)
    skip_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    elapsed_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Time from serving the item to the answer, measured on the server."
    )
    client_elapsed_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="The page's own figure: a hint only, never used in quality checks."
    )

    class Meta:
        ordering = ["study", "created_at"]
        indexes = [
            models.Index(fields=["study", "status"]),
            models.Index(fields=["panelist", "status"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(kind="single", right__isnull=True) | models.Q(kind="pair", right__isnull=False)),
                name="assignment_pair_has_right",
            ),
            models.UniqueConstraint(
                fields=["panelist"], condition=models.Q(status="open"), name="assignment_one_open_per_panelist"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} assignment {self.pk} ({self.status})"


class Side(models.TextChoices):
    SINGLE = "single", "single"
    LEFT = "left", "left"
    RIGHT = "right", "right"


class Rating(models.Model):
    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="ratings")
    generation = models.ForeignKey("generation.Generation", on_delete=models.PROTECT, related_name="ratings")
    criterion = models.ForeignKey(Criterion, on_delete=models.PROTECT, related_name="ratings")
    panelist = models.ForeignKey(Panelist, on_delete=models.CASCADE, related_name="ratings")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="ratings")
    score = models.PositiveSmallIntegerField()
    side = models.CharField(max_length=8, choices=Side.choices, default=Side.SINGLE)
    is_simulated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(score__gte=1) & models.Q(score__lte=10), name="rating_score_1_10"),
            models.UniqueConstraint(
                fields=["assignment", "generation", "criterion"], name="rating_unique_per_assignment_image_criterion"
            ),
        ]
        indexes = [models.Index(fields=["study", "criterion"])]

    def __str__(self) -> str:
        return f"rating {self.pk}: {self.score}"


class RatingChange(models.Model):
    """A score the panelist replaced through "previous": the rating holds the new score, this the old one."""

    rating = models.ForeignKey(Rating, on_delete=models.CASCADE, related_name="changes")
    score = models.PositiveSmallIntegerField(help_text="The score before this change.")
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["rating", "changed_at", "id"]

    def __str__(self) -> str:
        return f"rating {self.rating_id} was {self.score}"


class ExportKind(models.TextChoices):
    RATINGS = "ratings", "ratings.csv (every rating)"


class ExportStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ExportFile(models.Model):
    """An export written by a worker (a study above ``RESULTS_EXPORT_BACKGROUND_ROWS`` ratings), kept in the
    media storage under ``exports/`` and served only through the staff download view (never as a media URL).

    ``rows_expected`` is the study's ratings when it was asked for; ``rows`` counts the rows written (the
    task updates it as it goes, so the page can say how far it is); ``last_rating_id`` the newest rating then.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="export_files")
    kind = models.CharField(max_length=16, choices=ExportKind.choices, default=ExportKind.RATINGS)
    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    bom = models.BooleanField(default=False, help_text="Starts with a UTF-8 byte order mark (Excel).")
    rows_expected = models.PositiveIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0)
    last_rating_id = models.BigIntegerField(default=0)
    file = models.FileField(max_length=255, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["study", "kind", "-created_at"], name="ratings_export_latest")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of study {self.study_id} ({self.get_status_display()}, {self.rows} rows)"
