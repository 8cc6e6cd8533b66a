"""Web container healthcheck: /healthz must come back 200 from Django (the database answers), not just
the port open. It is the one path production does not redirect to HTTPS (SECURE_REDIRECT_EXEMPT):
this check speaks plain http from inside the container.

The request carries a Host that DJANGO_ALLOWED_HOSTS accepts; a bare 127.0.0.1 would be refused
with 400 (DisallowedHost) in production and the container would never turn healthy.
"""

import os
import sys
import urllib.request

URL = "http://127.0.0.1:8000/healthz"


def allowed_host() -> str:
    for entry in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(","):
        host = entry.strip()
        if host and host != "*":
            return host.lstrip(".")  # ".example.com" allows example.com and its subdomains
    return "localhost"


def main() -> int:
    request = urllib.request.Request(URL, headers={"Host": allowed_host()})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - fixed http URL
            status = response.status
    except OSError as exc:  # URLError and HTTPError included
        print(f"unhealthy: {URL}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {URL} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
