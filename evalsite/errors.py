"""The one error base of the apps' services: a message fit to show and the HTTP status a view answers with.

Here, in the project package, because prompts, generation and ratings all raise it and none of them
may import another one "above" it (results -> ratings -> generation -> prompts); this module imports
nothing of theirs.
"""

from __future__ import annotations

from collections.abc import Iterable


class ServiceError(Exception):
    """A request a service refuses; nothing was written.

    ``message`` is one line for a page or a command; ``messages`` every problem, one per line
    (``[message]`` unless the service found several); ``status_code`` what a view answers with.
    """

    status_code = 400

    def __init__(self, message: str, *, messages: Iterable[str] = ()):
        super().__init__(message)
        self.message = message
        self.messages = list(messages) or [message]
