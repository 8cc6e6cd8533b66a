import asyncio
import contextlib
import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.brokers.gateway_sim import GatewaySimulator
from core.brokers.gateway_sim.protocol import MAX_SERVER_VERSION, MIN_SERVER_VERSION


class Command(BaseCommand):
    help = (
        "Serve the broker state file over the TWS API socket protocol, as IB Gateway would "
        "(point BROKER=ibkr, IBKR_HOST and IBKR_PORT at it). The file is read afresh for every request; "
        "its 'faults' object scripts errors, delays, silence and dropped connections."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=4002, help="port to listen on (default 4002; 0 picks one)")
        parser.add_argument("--state", default=None, help="the broker state file (default BROKER_STATE_FILE)")
        parser.add_argument(
            "--server-version",
            type=int,
            default=MAX_SERVER_VERSION,
            help=f"highest API server version to speak ({MIN_SERVER_VERSION}..{MAX_SERVER_VERSION}, default "
            f"{MAX_SERVER_VERSION})",
        )
        parser.add_argument(
            "--no-write-fills",
            action="store_true",
            help="keep fills of orders placed through the simulator out of the state file",
        )

    def handle(self, *args, **options) -> None:
        state = options["state"] or settings.BROKER_STATE_FILE
        try:
            sim = GatewaySimulator(
                state,
                host=options["host"],
                port=options["port"],
                server_version=options["server_version"],
                write_fills=not options["no_write_fills"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if logging.getLogger("core.brokers.gateway_sim").getEffectiveLevel() > logging.INFO:
            logging.getLogger("core.brokers.gateway_sim").setLevel(logging.INFO)

        async def serve() -> None:
            try:
                port = await sim.start()
            except OSError as exc:
                raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}") from exc
            self.stdout.write(
                f"IB Gateway simulator on {options['host']}:{port} (server version up to "
                f"{options['server_version']}), serving {state}"
            )
            self.stdout.flush()
            await sim.serve_forever()

        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a clean stop
            asyncio.run(serve())
