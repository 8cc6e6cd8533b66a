"""The API's JSON parser: DRF's, with a nesting limit and no NUL characters.

The standard library parses JSON recursively: a body nested about a thousand deep (``[[[[...``,
a few kilobytes) raises ``RecursionError`` inside the parser or in whatever walks the result next,
and the request ends in a 500. No body of this API nests deeper than two levels, so anything deeper
than ``max_depth`` is refused before it is parsed, by counting brackets outside strings.

A parsed string holding a NUL character (``"\\u0000"``) is refused as
``core.middleware.RejectNulCharactersMiddleware`` refuses one in a query parameter or a form field:
a 400 naming the field.
"""

import codecs
import re
from itertools import accumulate

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.settings import api_settings
from rest_framework.utils import json

from core.middleware import NUL, NUL_MESSAGE

# A JSON string (escapes included); what is left once they are removed is structure and scalars.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deep the arrays and objects of ``text`` nest (0 for a scalar), without parsing it."""
    brackets = _BRACKETS.findall(_STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _holds_nul(value) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


class JSONParser(parsers.JSONParser):
    max_depth = 32

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
        except ValueError as exc:  # not in the declared encoding
            raise ParseError(f"JSON parse error - {exc}") from exc
        if json_depth(text) > self.max_depth:
            raise ParseError(f"JSON parse error - nested more than {self.max_depth} levels deep.")
        try:
            data = json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        self._refuse_nul(data)
        return data

    @staticmethod
    def _refuse_nul(data) -> None:
        if isinstance(data, dict):
            for key, value in data.items():
                if _holds_nul(key) or _holds_nul(value):
                    raise ValidationError({key.replace(NUL, "\\x00"): [NUL_MESSAGE]})
        elif _holds_nul(data):
            raise ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [NUL_MESSAGE]})
