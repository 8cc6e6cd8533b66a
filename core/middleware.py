"""Requests refused before any view runs."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse, QueryDict

NUL = "\x00"
NUL_MESSAGE = "Null characters are not allowed."
API_PATH_PREFIX = "/api/"


def field_with_nul(data: QueryDict) -> str | None:
    """The name of the first parameter whose name or any value holds a NUL character, else None."""
    for name, values in data.lists():
        if NUL in name or any(NUL in value for value in values):
            return name.replace(NUL, "\\x00")
    return None


class RejectNulCharactersMiddleware:
    """A NUL character in a query parameter or a submitted form field: a 400 naming the field.

    PostgreSQL text cannot hold NUL, and psycopg refuses to send a query parameter with one: the view
    that looks the value up (an account id, a symbol) fails with a 500, where SQLite merely finds
    nothing. No input of this application can mean a NUL, so it is refused here, once, for the API,
    the pages and the admin alike. The API answers as DRF does (``{"field": ["reason"]}``), a page in
    plain text. JSON bodies are parsed by the API views, not here: ``core.parsers.JSONParser`` checks
    those.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        field = field_with_nul(request.GET)
        if field is None and request.method == "POST":
            field = field_with_nul(request.POST)  # form bodies only; empty for JSON
        if field is None:
            return self.get_response(request)
        if request.path_info.startswith(API_PATH_PREFIX):
            return JsonResponse({field: [NUL_MESSAGE]}, status=400)
        return HttpResponseBadRequest(f"{field}: {NUL_MESSAGE}", content_type="text/plain; charset=utf-8")
