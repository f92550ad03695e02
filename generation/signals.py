"""Signals generation sends for the apps above it (which generation must not import).

``sweep_images_added``: images of a sweep became available (a render chunk finished with images
done, or images were imported), sent after they were committed; ``sweep_id`` names the sweep.
Ratings listens to give studies over that sweep items for the new images (enqueued, off the
request path).

``vram_profile_done``: a VRAM profile of a model finished (sent after commit); ``image_model_id``
names the model. Results listens to refresh the boards that show that model's "Min VRAM".
"""

from __future__ import annotations

from django.dispatch import Signal

sweep_images_added = Signal()
vram_profile_done = Signal()
