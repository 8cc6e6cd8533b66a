"""Who a log line is about: the request, the Celery task, the account and the run.

Every line logged while a request, a task or a journal run is under way carries these fields (the
filter below copies them onto the record), so one grep for a run id finds everything about it. The
text format shows them as ``[key=value ...]``; ``LOG_FORMAT=json`` writes one JSON object a line.
"""

import logging
import re
import uuid
from contextvars import ContextVar

FIELDS = ("request_id", "task_id", "account", "run_id")

_context: ContextVar[dict[str, str]] = ContextVar("log_context", default={})  # noqa: B039 - never mutated

# A request id from a proxy is reused only when it looks like one (no log injection, bounded size).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def log_bind(**values: object) -> None:
    """Add fields to the current context (None removes a field)."""
    current = dict(_context.get())
    for key, value in values.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = str(value)
    _context.set(current)


def log_clear() -> None:
    _context.set({})


def log_context() -> dict[str, str]:
    return dict(_context.get())


def request_id_from(header: str | None) -> str:
    return header if header and _REQUEST_ID.match(header) else uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Copies the bound fields onto every record (empty when unbound) and a ``context`` summary."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _context.get()
        for name in FIELDS:
            setattr(record, name, bound.get(name, ""))
        record.context = (" [" + " ".join(f"{k}={bound[k]}" for k in FIELDS if k in bound) + "]") if bound else ""
        return True


class RequestIdMiddleware:
    """Gives every request an id (the proxy's ``X-Request-ID`` when sane), binds it for the request's
    log lines and returns it in the response's ``X-Request-ID``."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_from(request.headers.get("X-Request-ID"))
        request.request_id = request_id
        token = _context.set({"request_id": request_id})
        try:
            response = self.get_response(request)
        finally:
            _context.reset(token)
        response["X-Request-ID"] = request_id
        return response


def celery_signals_connect() -> None:
    """Bind the task id for the lines a Celery task logs; forget everything when it ends."""
    from celery.signals import task_postrun, task_prerun

    def _prerun(task_id=None, **kwargs) -> None:
        _context.set({"task_id": task_id} if task_id else {})

    def _postrun(**kwargs) -> None:
        log_clear()

    task_prerun.connect(_prerun, weak=False, dispatch_uid="core.logcontext.prerun")
    task_postrun.connect(_postrun, weak=False, dispatch_uid="core.logcontext.postrun")
