"""Dates and times a client may send: the range every filter, query parameter and body field accepts.

Python's dates end at the years 1 and 9999, and the code shifts what it is given: the day after
``until``, twelve months before ``date``, the start of a trade date in the exchange's zone, a time
with an offset written in UTC. At the edges those shifts overflow (``OverflowError``: a 500). A date
outside ``EARLIEST_DATE``..``LATEST_DATE`` means nothing to a trading ledger, so the fields here
refuse it as invalid input, naming the field, before any view, selector or query sees it. A time
comes out in UTC, whatever offset it was written with.

The pages' filters and the API's filter sets use the django-filter classes, the API's query and
body serializers the DRF fields. (Text holding a NUL character is refused for every field at once,
by ``core.middleware`` and ``core.parsers``.)
"""

from datetime import UTC, date, datetime

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField as FilterIsoDateTimeField
from rest_framework import serializers

EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2999, 12, 31)


def validate_date_range(value: date) -> None:
    """A date, or a time (its own calendar date, in its own offset), within EARLIEST..LATEST_DATE."""
    day = value.date() if isinstance(value, datetime) else value
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ValidationError(
            f"Enter a date from {EARLIEST_DATE.isoformat()} to {LATEST_DATE.isoformat()}.", code="date_range"
        )


# --- Django forms and django-filter (the pages' filters, the API's filter sets) --------------------
class DateFormField(forms.DateField):
    default_validators = [validate_date_range]


class IsoDateTimeFormField(FilterIsoDateTimeField):
    default_validators = [validate_date_range]

    def clean(self, value):
        value = super().clean(value)
        # ISO 8601 offsets reach +-23:59, PostgreSQL's only +-15:59 (a 500 there): sent in UTC, any fits.
        return None if value is None else value.astimezone(UTC)


class DateFilter(django_filters.DateFilter):
    field_class = DateFormField


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = IsoDateTimeFormField


# --- DRF (query and body serializers) -------------------------------------------------------------
class DateField(serializers.DateField):
    default_validators = [validate_date_range]
