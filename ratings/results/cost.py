"""What 1,000 images cost: the board's "$ per 1,000 images" column (README "Will it fit my card?").

Pure arithmetic, no Django: one GPU renders one image at a time in a worker, so an image takes
its seconds of that GPU's hour. Model loading and warm-up are left out, as they are of the speed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def usd_per_1000_images(*, seconds_per_image: float, usd_per_hour: float) -> float:
    """$ for 1,000 images = seconds per image x 1000 / 3600 s per hour x $ per GPU-hour."""
    if seconds_per_image < 0 or usd_per_hour < 0:
        raise ValueError("seconds per image and the price per hour cannot be negative")
    return seconds_per_image * 1000.0 / 3600.0 * usd_per_hour


def model_cost(*, seconds_per_image: float | None, gpus: Collection[str], on_cpu: bool,
               prices: Mapping[str, float]) -> tuple[float | None, float | None, str]:
    """(usd_per_1000_images, usd_per_hour, note): the cost of a model's images from the median seconds and
    the price of the one GPU they ran on; without a cost, the note says why."""
    if seconds_per_image is None:
        return None, None, "no speed measured"
    if not gpus:
        return None, None, "rendered on a CPU" if on_cpu else "GPU unknown"
    if len(gpus) > 1:
        return None, None, f"rendered on several GPUs ({', '.join(sorted(gpus))}): no one price"
    (gpu,) = gpus
    price = prices.get(gpu)
    if price is None:
        return None, None, f"no price for {gpu} (admin: GPU prices)"
    return usd_per_1000_images(seconds_per_image=seconds_per_image, usd_per_hour=price), price, ""
