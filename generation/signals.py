"""Signals generation sends for the apps above it (which generation must not import).

``sweep_images_added``: images of a sweep became available (a render chunk finished with images
done, or images were imported), sent after they were committed; ``sweep_id`` names the sweep.
Ratings listens to give studies over that sweep items for the new images (enqueued, off the
request path).
"""

from __future__ import annotations

from django.dispatch import Signal

sweep_images_added = Signal()
