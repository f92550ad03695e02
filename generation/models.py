"""The model registry, sweeps and the generations they produce."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from generation.validation import image_model_errors


class Backend(models.TextChoices):
    DIFFUSERS = "diffusers", "diffusers pipeline"
    TRANSFORMERS = "transformers", "transformers AutoModelForCausalLM (generate_image)"
    # The one 'imported' marker (issue 15): a model whose images were made elsewhere (an API, a closed
    # model) and brought in by import_images. No worker renders it; its Generations have origin=imported.
    IMPORTED = "imported", "imported images (made elsewhere; no worker renders it)"


class DType(models.TextChoices):
    BF16 = "bfloat16", "bfloat16"
    FP16 = "float16", "float16"
    FP32 = "float32", "float32"


class Quantization(models.TextChoices):
    NONE = "none", "none"
    BNB_8BIT = "8bit", "bitsandbytes 8-bit"
    BNB_4BIT = "4bit", "bitsandbytes 4-bit (NF4)"


class Offload(models.TextChoices):
    NONE = "none", "none (whole pipeline on the GPU)"
    MODEL = "model", "model CPU offload"
    SEQUENTIAL = "sequential", "sequential CPU offload"


class ImageModel(models.Model):
    """One text-to-image system and the settings it renders with."""

    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.DIFFUSERS)
    source = models.CharField(max_length=500, help_text="Hub repo id (org/name) or a local directory.")
    revision = models.CharField(max_length=100, blank=True, help_text="Hub revision (branch, tag or commit).")
    pipeline_class = models.CharField(
        max_length=100, blank=True, help_text="diffusers class, e.g. FluxPipeline; empty = DiffusionPipeline (auto)."
    )
    num_inference_steps = models.PositiveIntegerField(default=28)
    guidance_scale = models.FloatField(
        null=True, blank=True, help_text="Passed to the pipeline when set (0.0 is passed, and disables CFG)."
    )
    width = models.PositiveIntegerField(default=1024)
    height = models.PositiveIntegerField(default=1024)
    extra_params = models.JSONField(
        default=dict, blank=True, help_text='More pipeline call kwargs, e.g. {"max_sequence_length": 512}.'
    )
    load_params = models.JSONField(default=dict, blank=True, help_text="More from_pretrained kwargs.")
    trust_remote_code = models.BooleanField(
        default=False, verbose_name="run the model's own code (trust_remote_code)",
        help_text="Lets the model's repository run Python on the GPU workers; needs its own permission.",
    )
    dtype = models.CharField(max_length=16, choices=DType.choices, default=DType.BF16)
    quantization = models.CharField(max_length=8, choices=Quantization.choices, default=Quantization.NONE)
    offload = models.CharField(max_length=16, choices=Offload.choices, default=Offload.NONE)
    fast_mode = models.BooleanField(
        default=False, help_text="Opt-in torch.compile of the denoiser (compile cost amortised over the sweep)."
    )
    min_vram_gb = models.FloatField(null=True, blank=True, help_text="Declared minimum VRAM in GiB.")
    fallback = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="fallback_for",
        help_text="Rendered with instead when this model runs out of memory even with CPU offload.",
    )
    enabled = models.BooleanField(default=True)
    is_reference = models.BooleanField(default=False, editable=False)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [  # staff roles (evalsite.access)
            ("manage_models", "Can add and change image models"),
            ("allow_remote_code", "Can let a model run its own code on the workers (trust_remote_code)"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(num_inference_steps__gte=1), name="imagemodel_steps_gte_1"),
            models.CheckConstraint(
                condition=~models.Q(fallback=models.F("id")), name="imagemodel_fallback_not_self"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = image_model_errors(model=self)
        if errors:
            raise ValidationError(errors)


class SweepStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "done with failures"
    CANCELLED = "cancelled", "cancelled"


class ImageFormat(models.TextChoices):
    PNG = "png", "PNG (lossless)"
    JPEG = "jpeg", "JPEG quality 95"
    WEBP = "webp", "WebP quality 95"


class Sweep(models.Model):
    """Every prompt of a suite × every model × every seed."""

    name = models.CharField(max_length=200, blank=True)
    suite = models.ForeignKey("prompts.PromptSuite", on_delete=models.PROTECT, related_name="sweeps")
    image_models = models.ManyToManyField(ImageModel, related_name="sweeps")
    seeds = models.JSONField(default=list, help_text="The same seeds for every model and prompt.")
    canvas_width = models.PositiveIntegerField(default=1024)
    canvas_height = models.PositiveIntegerField(default=1024)
    image_format = models.CharField(max_length=8, choices=ImageFormat.choices, default=ImageFormat.PNG)
    status = models.CharField(max_length=16, choices=SweepStatus.choices, default=SweepStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    prompt_categories = models.JSONField(
        default=list, blank=True, help_text="Only prompts of these categories were rendered (empty: all)."
    )
    prompt_sample = models.PositiveIntegerField(
        null=True, blank=True, help_text="A random subset of this many prompts was rendered (empty: all)."
    )
    prompt_sample_seed = models.BigIntegerField(null=True, blank=True, help_text="Seed of the random subset.")
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("run_sweep", "Can start, retry and watch sweeps")]  # staff roles (evalsite.access)

    def __str__(self) -> str:
        return self.name or f"Sweep {self.pk}"


class GenerationStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


class Origin(models.TextChoices):
    """Where an image came from: rendered by our workers, or imported (made elsewhere, normalised alike)."""

    RENDERED = "rendered", "rendered by a worker"
    IMPORTED = "imported", "imported"


def new_public_id() -> str:
    """Opaque, unguessable id under which panelists see an image (reveals nothing)."""
    return secrets.token_urlsafe(18)


def generation_upload_to(instance: Generation, filename: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else "png"
    return f"g/{instance.public_id[:2]}/{instance.public_id}.{ext}"


class Generation(models.Model):
    """One image: a prompt rendered by a model with a seed, and how it went."""

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="generations")
    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.PROTECT, related_name="generations")
    model = models.ForeignKey(ImageModel, on_delete=models.PROTECT, related_name="generations")
    seed = models.BigIntegerField()
    status = models.CharField(
        max_length=16, choices=GenerationStatus.choices, default=GenerationStatus.PENDING, db_index=True
    )
    image = models.ImageField(upload_to=generation_upload_to, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    native_width = models.PositiveIntegerField(null=True, blank=True, help_text="Size the model rendered.")
    native_height = models.PositiveIntegerField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Pipeline call wall time, CUDA synchronised.")
    peak_vram_allocated = models.BigIntegerField(null=True, blank=True, help_text="Bytes; null on CPU.")
    peak_vram_reserved = models.BigIntegerField(null=True, blank=True, help_text="Bytes; null on CPU.")
    device = models.CharField(max_length=32, blank=True, help_text="cuda or cpu.")
    gpu_name = models.CharField(max_length=200, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    offload_used = models.CharField(max_length=16, blank=True)
    fallback_used = models.ForeignKey(
        ImageModel, null=True, blank=True, on_delete=models.PROTECT, related_name="fallback_generations",
        help_text="The model that actually rendered, when the fallback was used.",
    )
    fast_mode = models.BooleanField(default=False)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.RENDERED, db_index=True)
    cost = models.FloatField(null=True, blank=True, help_text="Cost per image as supplied by an import manifest.")
    settings_snapshot = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker holding this image (while running)."
    )
    enqueued_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When this image's chunk was last sent to the queue (reconcile re-sends a chunk nobody claimed).",
    )
    # OCR of images whose prompt asks for text (generation.engine.ocr): what Tesseract read and how close it is.
    ocr_text = models.TextField(blank=True, help_text="Text Tesseract recognised in the image.")
    ocr_cer = models.FloatField(null=True, blank=True, help_text="Character error rate vs expected text (0–1).")
    ocr_all_words = models.BooleanField(null=True, blank=True, help_text="Every expected word was recognised.")
    ocr_languages = models.CharField(max_length=64, blank=True)
    ocr_error = models.TextField(blank=True, help_text="Why OCR failed (it never fails the image).")

    class Meta:
        ordering = ["sweep", "model", "prompt", "seed"]
        constraints = [
            models.UniqueConstraint(
                fields=["sweep", "prompt", "model", "seed"], name="generation_unique_per_sweep_prompt_model_seed"
            ),
        ]
        indexes = [models.Index(fields=["sweep", "model", "status"])]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.status})"


class WorkerReport(models.Model):
    """What one GPU worker says it can load (sent at start and when staff ask again from the sweep form).

    ``capabilities`` maps an ImageModel slug to {"loadable": bool, "reason": str}.
    """

    worker = models.CharField(max_length=200, unique=True)
    reported_at = models.DateTimeField()
    requested_at = models.DateTimeField(null=True, blank=True, help_text="Staff asked for a fresh report.")
    device = models.CharField(max_length=32, blank=True)
    gpu_name = models.CharField(max_length=200, blank=True)
    memory_bytes = models.BigIntegerField(null=True, blank=True, help_text="GPU memory (or RAM on CPU).")
    hub_reachable = models.BooleanField(default=False)
    capabilities = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-reported_at"]

    def __str__(self) -> str:
        return f"{self.worker} ({self.reported_at:%Y-%m-%d %H:%M})"


class VramProfileStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"


class VramProfile(models.Model):
    """Which card classes one model renders on, with which setting, how fast (profile_vram, issue 14).

    ``report`` is ``generation.engine.profile.profile``'s report as it returned it (JSON): per
    setting what it took uncapped, per card the fastest setting that rendered under the card's cap,
    and ``min_card``. Filled step by step while running, so a page can show how far it got.
    """

    image_model = models.ForeignKey(ImageModel, on_delete=models.CASCADE, related_name="vram_profiles")
    status = models.CharField(max_length=16, choices=VramProfileStatus.choices, default=VramProfileStatus.QUEUED,
                              db_index=True)
    cards = models.JSONField(default=list, help_text="Card classes asked for, in GB (8, 12, 16, 24, 48, 80).")
    setting_names = models.JSONField(default=list, blank=True, help_text="Settings asked for (empty: all).")
    verify = models.BooleanField(default=True, help_text="Each card's setting rendered under its cap (else predicted).")
    gpu_name = models.CharField(max_length=200, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="The process that ran it (host:pid).")
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text=(
        "Refreshed while the profile runs; a running profile without one for EVALSITE_RENDER_STALE_SECONDS "
        "lost its worker and is failed."))

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["image_model", "status", "-finished_at"], name="vram_profile_latest")]

    def __str__(self) -> str:
        return f"VRAM profile of {self.image_model} ({self.status})"


class GpuPrice(models.Model):
    """What one GPU-hour costs on a GPU of this name (as workers report it), for the board's $ per 1,000 images."""

    gpu_name = models.CharField(max_length=200, unique=True,
                                help_text="Exactly as the workers report it, e.g. 'NVIDIA H200'.")
    usd_per_hour = models.DecimalField(max_digits=10, decimal_places=4,
                                       validators=[MinValueValidator(Decimal("0.0001"))])
    note = models.CharField(max_length=300, blank=True, help_text="Where the price comes from (provider, date).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["gpu_name"]
        verbose_name = "GPU price"
        constraints = [models.CheckConstraint(condition=models.Q(usd_per_hour__gt=0), name="gpuprice_positive")]

    def __str__(self) -> str:
        return f"{self.gpu_name}: ${self.usd_per_hour}/h"
