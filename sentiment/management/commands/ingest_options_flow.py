from django.core.management.base import BaseCommand

from core.models import SyncReason
from sentiment.management.commands._output import report
from sentiment.services.runs import options_flow_ingest_run


class Command(BaseCommand):
    help = "Ingest options prints now (OPTIONS_FLOW_SOURCE) and detect their patterns."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the run as JSON")

    def handle(self, *args, **options) -> None:
        report(self, [options_flow_ingest_run(reason=SyncReason.MANUAL)], as_json=options["json"])
