"""The Responses API (``/v1/responses``) on the chat service (ADR 0119).

``protocol.py`` holds the request and response models, ``convert.py`` turns a request (and
the stored conversation it continues) into a chat completion request, and ``service.py``
drives :meth:`plinth.serving.service.CompletionService.start_chat` and shapes the answer as a
response object or as the Responses API's stream of events.
"""
