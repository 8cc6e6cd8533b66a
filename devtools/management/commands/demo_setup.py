"""``manage.py demo_setup``: the demo broker's state file, its accounts, the sentiment feed (ingested),
two logins and the demo tick.

Safe to run again: an existing state file is kept (unless --force), users are created once and
their passwords never reset, and the periodic task is created only when missing.
"""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_celery_beat.models import PeriodicTask

from core.brokers import get_broker
from core.brokers.contracts import InstrumentSpec
from core.models import AlertChannel, AlertKind, AlertPreference, ChannelKind, SyncReason
from core.scheduling import PeriodicTaskSpec, periodic_tasks_ensure
from devtools.demo import CASH_ACCOUNT_ID, DEFAULT_SEED, MARGIN_ACCOUNT_ID, STOCKS, demo_state_build, demo_state_write
from devtools.demo_sentiment import demo_feed_build, demo_feed_write
from devtools.demo_signals import demo_signals_create
from marketdata.models import Quote, WatchedInstrument
from marketdata.services import instruments_resolve
from sentiment.services.confluence import confluence_compute
from sentiment.services.runs import options_flow_ingest_run, sentiment_ingest_run
from trading.models import Account
from trading.services.accounts import accounts_sync, paper_account_create

ACCOUNT_NAMES = {MARGIN_ACCOUNT_ID: "Margin demo", CASH_ACCOUNT_ID: "Cash demo"}
PAPER_ACCOUNT = "PAPER-DEMO"
TRADER = ("demo", "demo-password")
STAFF = ("admin", "admin-password")
DEMO_TICK = PeriodicTaskSpec(
    name="Demo broker tick",
    task="devtools.demo_tick",
    description="Walk the demo broker's prices forward and now and then add a fill (demo mode only).",
    every_seconds=30,
    expire_seconds=25,
)


class Command(BaseCommand):
    help = "Write the demo broker state, sync its accounts, create the demo logins and the demo tick task."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--force", action="store_true", help="Rewrite the state file even if it exists.")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Seed for a rebuilt state file.")

    def handle(self, *args, force: bool = False, seed: int = DEFAULT_SEED, **options) -> None:
        # The logins have published passwords: never create them next to a real broker or in production.
        if settings.BROKER != "simulated":
            raise CommandError(f"demo_setup needs BROKER=simulated (it is {settings.BROKER!r})")
        if not (settings.DEBUG or settings.DEMO_MODE):
            raise CommandError("demo_setup runs only with DJANGO_DEBUG=true or DEMO_MODE=true")

        self._state_file(force=force, seed=seed)
        self._accounts()
        self._watched()
        self._sentiment(force=force, seed=seed)
        with transaction.atomic():
            trader = self._user(*TRADER, superuser=False)
            self._user(*STAFF, superuser=True)
            for account in Account.objects.filter(account_id__in=ACCOUNT_NAMES):
                account.users.add(trader)
            self._alerts(trader)
        self._paper_account(trader)
        self._signals()
        created = periodic_tasks_ensure(specs=[DEMO_TICK])
        # The tick was once trading's task: point a demo database made then at where it lives now.
        PeriodicTask.objects.filter(name=DEMO_TICK.name, task="trading.demo_tick").update(task=DEMO_TICK.task)
        self.stdout.write(f"Periodic task {DEMO_TICK.name!r}: {'created' if created else 'exists, left unchanged'}")
        if not settings.DEMO_MODE:
            self.stdout.write(self.style.WARNING("DEMO_MODE is off: the demo tick will skip until DEMO_MODE=true"))
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready. Trader login: {TRADER[0]} / {TRADER[1]}   Staff login: {STAFF[0]} / {STAFF[1]}"
            )
        )

    def _state_file(self, *, force: bool, seed: int) -> None:
        path = Path(settings.BROKER_STATE_FILE)
        if path.exists() and not force:
            self.stdout.write(f"Broker state {path}: exists, left unchanged (--force rewrites it)")
            return
        state = demo_state_build(now=datetime.now(UTC), seed=seed)
        demo_state_write(path=path, state=state)
        fills = sum(len(account["executions"]) for account in state["accounts"])
        self.stdout.write(f"Broker state {path}: written (seed {seed}, {fills} fills)")

    def _sentiment(self, *, force: bool, seed: int) -> None:
        """The demo's feed of posts and options flow, ingested and scored, with confluence for the last two days."""
        path = Path(settings.SENTIMENT_FEED_FILE)
        if path.exists() and not force:
            self.stdout.write(f"Sentiment feed {path}: exists, left unchanged (--force rewrites it)")
        else:
            feed = demo_feed_build(now=datetime.now(UTC), seed=seed)
            demo_feed_write(path=path, feed=feed)
            self.stdout.write(
                f"Sentiment feed {path}: written ({len(feed['tweets'])} tweets, {len(feed['reddit_posts'])} Reddit "
                f"posts, {len(feed['options_flow'])} options prints)"
            )
        runs = [sentiment_ingest_run(source="file", reason=SyncReason.MANUAL)]
        if settings.OPTIONS_FLOW_SOURCE == "broker":
            # The broker serves the feed's prints (`make run BROKER=ibkr`: the IB Gateway simulator, whose
            # IBKR adapter derives prints from them); the first ingest goes through it (ingest_options_flow).
            self._option_flow_to_broker(json.loads(path.read_text(encoding="utf-8")).get("options_flow") or [])
        else:
            runs.append(options_flow_ingest_run(reason=SyncReason.MANUAL))
        for run in runs:
            self.stdout.write(f"{run.get_kind_display()}: {run.status} {run.message}")
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        scored = sum(len(confluence_compute(hour=now - timedelta(hours=h))) for h in range(48))
        self.stdout.write(f"Confluence: {scored} hourly scores over the last 48 hours")

    def _option_flow_to_broker(self, prints: list[dict]) -> None:
        path = Path(settings.BROKER_STATE_FILE)
        state = json.loads(path.read_text(encoding="utf-8"))
        state["option_flow"] = prints
        demo_state_write(path=path, state=state)
        self.stdout.write(
            f"Broker state {path}: {len(prints)} options prints as option_flow (OPTIONS_FLOW_SOURCE=broker: "
            "the options flow comes from the broker)"
        )

    def _accounts(self) -> None:
        result = accounts_sync(broker=get_broker())
        for warning in result.warnings:
            self.stdout.write(self.style.WARNING(f"Broker warning: {warning}"))
        self.stdout.write(
            f"Accounts: created {result.created or 'none'}, already present "
            f"{sorted(result.updated + result.unchanged) or 'none'}"
        )
        # A name staff already gave an account is theirs: only blank names are filled in. save(), not
        # update(), so the change shows in the account's history like any other edit.
        for account in Account.objects.filter(account_id__in=ACCOUNT_NAMES, name=""):
            account.name = ACCOUNT_NAMES[account.account_id]
            account.save(update_fields=["name", "updated_at"])
            self.stdout.write(f"Account {account.account_id}: named {account.name!r}")

    def _watched(self) -> None:
        """Watch the demo's stocks: daily, hourly and five-minute bars (what the state file holds)."""
        instruments = instruments_resolve(specs=[InstrumentSpec(symbol=s, con_id=c) for s, (c, *_r) in STOCKS.items()])
        created = 0
        for instrument in instruments.values():
            _watch, new = WatchedInstrument.objects.get_or_create(
                instrument=instrument, defaults={"bar_sizes": ["1d", "1h", "5m"]}
            )
            created += new
        self.stdout.write(f"Watched instruments: {created} created, {len(instruments) - created} already watched")

    def _paper_account(self, trader) -> None:
        """A PAPER account for the order ticket: orders there are filled by the paper engine, never sent."""
        if Account.objects.filter(account_id=PAPER_ACCOUNT).exists():
            self.stdout.write(f"Paper account {PAPER_ACCOUNT}: exists, left unchanged")
            return
        paper_account_create(account_id=PAPER_ACCOUNT, cash=Decimal(100_000), members=[trader], name="Paper trading")
        self.stdout.write(f"Paper account {PAPER_ACCOUNT}: created with 100,000 USD")

    def _signals(self) -> None:
        """Today's demo signals on the paper account: one executed into an open paper trade, two GENERATED."""
        account = Account.objects.get(account_id=PAPER_ACCOUNT)
        prices = {symbol: Decimal(row[1]) for symbol, row in STOCKS.items()}
        # The demo's prices now: the stored quote, else the state file's (the market data sync runs after
        # this command), so that entries, stops and targets sit around today's price, not the history's start.
        broker = get_broker()
        for symbol in prices:
            quote = broker.quote(symbol)
            mark = quote and (quote.last or quote.bid or quote.ask)
            if mark:
                prices[symbol] = mark
        quotes = Quote.objects.filter(instrument__symbol__in=list(prices), instrument__sec_type="STK")
        for quote in quotes.select_related("instrument"):
            mark = quote.last or quote.bid or quote.ask
            if mark:
                prices[quote.instrument.symbol] = mark
        signals = demo_signals_create(account=account, now=datetime.now(UTC), prices=prices)
        summary = ", ".join(f"{s.signal_id} {s.status}" for s in signals)
        self.stdout.write(f"Demo signals on {PAPER_ACCOUNT}: {summary}")

    def _alerts(self, trader) -> None:
        """The demo trader's alerts go to an email channel; with the default console email backend the
        messages appear in the worker's output (make run), every fill included."""
        _, created = AlertChannel.objects.get_or_create(
            user=trader, kind=ChannelKind.EMAIL, name="demo (console email)", defaults={"address": "demo@localhost"}
        )
        AlertPreference.objects.get_or_create(
            user=trader, defaults={"kinds": [*AlertKind.default_choice(), AlertKind.FILL]}
        )
        self.stdout.write(f"Alerts of {trader.get_username()}: {'an email channel created' if created else 'exist'}")

    def _user(self, username: str, password: str, *, superuser: bool):
        user_model = get_user_model()
        user = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
        if user is not None:
            self.stdout.write(f"User {username}: exists, password left unchanged")
            return user
        create = user_model.objects.create_superuser if superuser else user_model.objects.create_user
        user = create(username=username, password=password, email="")
        self.stdout.write(f"User {username}: created")
        return user
