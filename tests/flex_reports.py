"""IBKR Flex reports for the tests of the broker boundary's parser (tests/core) and of the import
(tests/trading): the example files in tests/core/fixtures/ and builders of small reports."""

from pathlib import Path

from core.brokers.expiries import settlement_exec_id

FIXTURES = Path(__file__).parent / "core" / "fixtures"
ACTIVITY = FIXTURES / "flex_activity.xml"
ACCOUNT = "DU1234567"  # the account of the fixtures, and of the simulated broker's example state
BUY_1, BUY_2, SELL, CALL, PUT_SALE = (
    "0000e1a7.68e5f3c2.01.01",
    "0000e1a7.68e74a10.01.01",
    "0000e1a7.68e8b7d4.01.01",
    "0000e1a7.68e89c01.01.01",
    "0000e1a7.68e60a11.01.01",
)
# A book entry without ibExecID: keyed as the position sync keys the same expiry when it infers it.
PUT_EXPIRY = settlement_exec_id(account_id=ACCOUNT, option_key="OPT:SPY:USD:20251017:640:P:100", leg="exp")


def trade_row(**attrs) -> str:
    values = {
        "accountId": ACCOUNT,
        "currency": "USD",
        "assetCategory": "STK",
        "symbol": "SOFI",
        "conid": "443286233",
        "listingExchange": "NASDAQ",
        "multiplier": "1",
        "tradeID": "7000000001",
        "dateTime": "20251008;101500",
        "tradeDate": "20251008",
        "transactionType": "ExchTrade",
        "exchange": "NASDAQ",
        "quantity": "10",
        "tradePrice": "20",
        "ibCommission": "-0.35",
        "ibCommissionCurrency": "USD",
        "transactionID": "31000000001",
        "buySell": "BUY",
        "ibOrderID": "4100000001",
        "ibExecID": "0000e1a7.00000001.01.01",
        "levelOfDetail": "EXECUTION",
    } | attrs
    return "<Trade " + " ".join(f'{k}="{v}"' for k, v in values.items() if v is not None) + " />"


def flex_xml(*trades: str, cash: str = "", account: str = ACCOUNT, statements: int = 1) -> bytes:
    statement = (
        f'<FlexStatement accountId="{account}" fromDate="20250101" toDate="20251017" period="Custom" '
        f'whenGenerated="20251018;083015"><Trades>{"".join(trades)}</Trades>'
        f"<CashTransactions>{cash}</CashTransactions></FlexStatement>"
    )
    return (
        f'<FlexQueryResponse queryName="q" type="AF"><FlexStatements count="{statements}">'
        f"{statement * statements}</FlexStatements></FlexQueryResponse>"
    ).encode()
