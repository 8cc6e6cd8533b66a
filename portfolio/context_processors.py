from django.conf import settings


def exchange(request) -> dict:
    """Times on the pages are shown in the exchange's zone (no query: settings only)."""
    return {"exchange_tz": settings.EXCHANGE_TIME_ZONE}
