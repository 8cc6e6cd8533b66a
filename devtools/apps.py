from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    """Demo data and benchmarks. They write made-up users and data into whatever DATABASE_URL points
    at, so settings install this app only with DEBUG on or DEVTOOLS=true: a production image does not
    offer them."""

    name = "devtools"
    verbose_name = "Development tools"
