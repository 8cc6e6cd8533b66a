"""The gateway's outgoing messages, laid out field by field as ib_async 2.1.0's decoder reads them.

Every encoder returns one framed message. Layouts that changed between server versions 157 and 178
(error, contract details, execution, open and completed orders) follow ``server_version``.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.brokers.gateway_sim.protocol import UNSET_DOUBLE, UNSET_INTEGER, Out, frame


@dataclass(frozen=True, slots=True)
class WireContract:
    """A contract as the gateway describes it (ib_async ``Contract`` field names in comments)."""

    con_id: int  # conId
    symbol: str
    sec_type: str = "STK"  # secType
    last_trade: str = ""  # lastTradeDateOrContractMonth, YYYYMMDD
    strike: Decimal | None = None
    right: str = ""
    multiplier: str = ""  # "" for stocks, "100" for US equity options
    exchange: str = "SMART"
    primary_exchange: str = ""
    currency: str = "USD"
    local_symbol: str = ""
    trading_class: str = ""
    long_name: str = ""

    @property
    def strike_text(self) -> str:
        return "0" if self.strike is None else _number(self.strike)


@dataclass(slots=True)
class WireOrder:
    """An order the gateway holds, with what it has filled so far."""

    order_id: int
    client_id: int
    perm_id: int
    account: str
    contract: WireContract
    action: str  # BUY / SELL
    quantity: Decimal
    order_type: str  # MKT, LMT, STP, ...
    limit_price: Decimal | None = None
    aux_price: Decimal | None = None
    tif: str = "DAY"
    order_ref: str = ""
    status: str = "PreSubmitted"
    filled: Decimal = Decimal(0)
    avg_fill_price: Decimal = Decimal(0)
    last_fill_price: Decimal = Decimal(0)
    completed_time: str = ""
    completed_status: str = ""
    exec_ids: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return max(self.quantity - self.filled, Decimal(0))

    @property
    def done(self) -> bool:
        return self.status in ("Filled", "Cancelled", "ApiCancelled", "Inactive")


def _number(value: Decimal | int | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)


def _optional_double(value: Decimal | None) -> str:
    return UNSET_DOUBLE if value is None else _number(value)


def ib_time(moment: datetime) -> str:
    """A time as IBKR writes it with a zone: ``20261120 14:32:15 UTC``."""
    return moment.astimezone(UTC).strftime("%Y%m%d %H:%M:%S UTC")


class Encoder:
    """Frames for one connection, in the layout of its negotiated server version."""

    def __init__(self, server_version: int) -> None:
        self.version = server_version

    # --- connection --------------------------------------------------------------------------------
    def handshake(self, connected_at: datetime) -> bytes:
        return frame([self.version, ib_time(connected_at)])

    def next_valid_id(self, order_id: int) -> bytes:
        return frame([Out.NEXT_VALID_ID, 1, order_id])

    def managed_accounts(self, accounts: list[str]) -> bytes:
        return frame([Out.MANAGED_ACCTS, 1, ",".join(accounts)])

    def error(self, req_id: int, code: int, message: str) -> bytes:
        fields: list[Any] = [Out.ERR_MSG, 2, req_id, code, message]
        if self.version >= 166:
            fields.append("")  # advancedOrderRejectJson
        return frame(fields)

    def current_time(self, moment: datetime) -> bytes:
        return frame([Out.CURRENT_TIME, 1, int(moment.timestamp())])

    # --- positions and accounts ----------------------------------------------------------------------
    @staticmethod
    def _contract_short(c: WireContract, *, exchange: str) -> list[Any]:
        """conId .. tradingClass as POSITION_DATA and EXECUTION_DATA carry them."""
        return [
            c.con_id,
            c.symbol,
            c.sec_type,
            c.last_trade,
            c.strike_text,
            c.right,
            c.multiplier,
            exchange,
            c.currency,
            c.local_symbol,
            c.trading_class,
        ]

    def position(self, account: str, c: WireContract, quantity: Decimal, avg_cost: Decimal) -> bytes:
        return frame(
            [Out.POSITION_DATA, 3, account, *self._contract_short(c, exchange=c.exchange), quantity, _number(avg_cost)]
        )

    def position_end(self) -> bytes:
        return frame([Out.POSITION_END, 1])

    def account_summary(self, req_id: int, account: str, tag: str, value: str, currency: str) -> bytes:
        return frame([Out.ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency])

    def account_summary_end(self, req_id: int) -> bytes:
        return frame([Out.ACCOUNT_SUMMARY_END, 1, req_id])

    def account_value(self, key: str, value: str, currency: str, account: str) -> bytes:
        return frame([Out.ACCT_VALUE, 2, key, value, currency, account])

    def portfolio_value(
        self,
        c: WireContract,
        *,
        quantity: Decimal,
        market_price: Decimal | None,
        market_value: Decimal | None,
        average_cost: Decimal,
        unrealized_pnl: Decimal | None,
        realized_pnl: Decimal | None,
        account: str,
    ) -> bytes:
        return frame(
            [
                Out.PORTFOLIO_VALUE,
                8,
                c.con_id,
                c.symbol,
                c.sec_type,
                c.last_trade,
                c.strike_text,
                c.right,
                c.multiplier,
                c.primary_exchange or c.exchange,
                c.currency,
                c.local_symbol,
                c.trading_class,
                quantity,
                _optional_double(market_price),
                _optional_double(market_value),
                _number(average_cost),
                _optional_double(unrealized_pnl),
                _optional_double(realized_pnl),
                account,
            ]
        )

    def account_update_time(self, moment: datetime) -> bytes:
        return frame([Out.ACCT_UPDATE_TIME, 1, moment.astimezone(UTC).strftime("%H:%M")])

    def account_download_end(self, account: str) -> bytes:
        return frame([Out.ACCT_DOWNLOAD_END, 1, account])

    def account_update_multi(
        self, req_id: int, account: str, model_code: str, key: str, value: str, currency: str
    ) -> bytes:
        return frame([Out.ACCOUNT_UPDATE_MULTI, 1, req_id, account, model_code, key, value, currency])

    def account_update_multi_end(self, req_id: int) -> bytes:
        return frame([Out.ACCOUNT_UPDATE_MULTI_END, 1, req_id])

    # --- executions ------------------------------------------------------------------------------------
    def execution(
        self,
        req_id: int,
        c: WireContract,
        *,
        order_id: int,
        exec_id: str,
        time: datetime,
        account: str,
        exchange: str,
        side: str,  # BOT / SLD
        shares: Decimal,
        price: Decimal,
        perm_id: int,
        client_id: int,
        cum_qty: Decimal,
        avg_price: Decimal,
        order_ref: str = "",
    ) -> bytes:
        fields: list[Any] = [
            Out.EXECUTION_DATA,
            req_id,
            order_id,
            *self._contract_short(c, exchange=exchange),
            exec_id,
            ib_time(time),
            account,
            exchange,
            side,
            shares,
            _number(price),
            perm_id,
            client_id,
            0,  # liquidation
            cum_qty,
            _number(avg_price),
            order_ref,
            "",  # evRule
            "",  # evMultiplier
            "",  # modelCode
            1,  # lastLiquidity: added
        ]
        if self.version >= 178:
            fields.append(0)  # pendingPriceRevision
        return frame(fields)

    def execution_end(self, req_id: int) -> bytes:
        return frame([Out.EXECUTION_DATA_END, 1, req_id])

    def commission_report(
        self, exec_id: str, commission: Decimal, currency: str, realized_pnl: Decimal | None = None
    ) -> bytes:
        return frame(
            [
                Out.COMMISSION_REPORT,
                1,
                exec_id,
                _number(commission),
                currency,
                _optional_double(realized_pnl),
                UNSET_DOUBLE,  # yield
                "",  # yieldRedemptionDate
            ]
        )

    # --- contracts and market data ----------------------------------------------------------------------
    def contract_details(self, req_id: int, c: WireContract) -> bytes:
        head: list[Any] = [Out.CONTRACT_DATA]
        if self.version < 164:
            head.append(8)  # message version, dropped at server version 164
        min_tick = "0.25" if c.sec_type == "FUT" else "0.01"
        fields = [
            *head,
            req_id,
            c.symbol,
            c.sec_type,
            c.last_trade,
            c.strike_text,
            c.right,
            c.exchange,
            c.currency,
            c.local_symbol or c.symbol,
            c.trading_class or c.symbol,  # marketName
            c.trading_class or c.symbol,
            c.con_id,
            min_tick,
        ]
        if self.version < 164:
            fields.append("")  # mdSizeMultiplier
        fields += [
            c.multiplier,
            "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,LMT,MKT,STP,STPLMT,TRAIL",  # orderTypes
            f"SMART,{c.primary_exchange}" if c.primary_exchange else "SMART",  # validExchanges
            1,  # priceMagnifier
            0,  # underConId
            c.long_name or c.symbol,
            c.primary_exchange,
            c.last_trade[:6],  # contractMonth
            "",  # industry
            "",  # category
            "",  # subcategory
            "US/Eastern",  # timeZoneId
            "",  # tradingHours
            "",  # liquidHours
            "",  # evRule
            "",  # evMultiplier
            0,  # numSecIds
            1,  # aggGroup
            c.symbol if c.sec_type != "STK" else "",  # underSymbol
            "STK" if c.sec_type == "OPT" else "",  # underSecType
            "26",  # marketRuleIds
            c.last_trade,  # realExpirationDate
            "COMMON" if c.sec_type == "STK" else "",  # stockType
        ]
        if self.version == 163:
            fields.append("1")  # suggestedSizeIncrement
        if self.version >= 164:
            fields += ["1", "1", "1"]  # minSize, sizeIncrement, suggestedSizeIncrement
        return frame(fields)

    def contract_details_end(self, req_id: int) -> bytes:
        return frame([Out.CONTRACT_DATA_END, 1, req_id])

    def historical_data(self, req_id: int, start: str, end: str, bars: list[tuple]) -> bytes:
        """``bars``: (date text, open, high, low, close, volume, wap, count) each."""
        fields: list[Any] = [Out.HISTORICAL_DATA, req_id, start, end, len(bars)]
        for date_text, open_, high, low, close, volume, wap, count in bars:
            fields += [date_text, _number(open_), _number(high), _number(low), _number(close), volume, wap, count]
        return frame(fields)

    def option_chain(
        self,
        req_id: int,
        *,
        exchange: str,
        underlying_con_id: int,
        trading_class: str,
        multiplier: str,
        expirations: list[str],
        strikes: list[Decimal],
    ) -> bytes:
        return frame(
            [
                Out.SECURITY_DEFINITION_OPTION_PARAMETER,
                req_id,
                exchange,
                underlying_con_id,
                trading_class,
                multiplier,
                len(expirations),
                *expirations,
                len(strikes),
                *(_number(k) for k in strikes),
            ]
        )

    def option_chain_end(self, req_id: int) -> bytes:
        return frame([Out.SECURITY_DEFINITION_OPTION_PARAMETER_END, req_id])

    def market_data_type(self, req_id: int, data_type: int) -> bytes:
        return frame([Out.MARKET_DATA_TYPE, 1, req_id, data_type])

    def tick_price(self, req_id: int, tick_type: int, price: Decimal, size: Decimal | int) -> bytes:
        return frame([Out.TICK_PRICE, 6, req_id, tick_type, _number(price), size, 0])

    def tick_size(self, req_id: int, tick_type: int, size: Decimal | int) -> bytes:
        return frame([Out.TICK_SIZE, 6, req_id, tick_type, size])

    def tick_string(self, req_id: int, tick_type: int, value: str) -> bytes:
        return frame([Out.TICK_STRING, 6, req_id, tick_type, value])

    def tick_option_computation(
        self, req_id: int, tick_type: int, *, iv, delta, option_price, gamma, vega, theta, underlying_price
    ) -> bytes:
        """Model Greeks (tick 13, delayed 83); a value the broker has not is IBKR's sentinel (-2 for a
        Greek, -1 for a volatility or price), as IB Gateway sends it. Server versions >= 156: no version."""

        def value(number, unset: int) -> str:
            return str(unset) if number is None else _number(number)

        return frame(
            [
                Out.TICK_OPTION_COMPUTATION,
                req_id,
                tick_type,
                0,  # tickAttrib: return-based
                value(iv, -1),
                value(delta, -2),
                value(option_price, -1),
                -1,  # pvDividend: not computed
                value(gamma, -2),
                value(vega, -2),
                value(theta, -2),
                value(underlying_price, -1),
            ]
        )

    def tick_snapshot_end(self, req_id: int) -> bytes:
        return frame([Out.TICK_SNAPSHOT_END, 1, req_id])

    # --- orders ------------------------------------------------------------------------------------------
    def order_status(self, o: WireOrder) -> bytes:
        return frame(
            [
                Out.ORDER_STATUS,
                o.order_id,
                o.status,
                o.filled,
                o.remaining,
                _number(o.avg_fill_price),
                o.perm_id,
                0,  # parentId
                _number(o.last_fill_price),
                o.client_id,
                "",  # whyHeld
                0,  # mktCapPrice
            ]
        )

    def _order_contract(self, c: WireContract) -> list[Any]:
        return [
            c.con_id,
            c.symbol,
            c.sec_type,
            c.last_trade,
            c.strike_text,
            c.right,
            c.multiplier,
            c.exchange,
            c.currency,
            c.local_symbol,
            c.trading_class,
        ]

    def open_order(self, o: WireOrder) -> bytes:
        fields: list[Any] = [
            Out.OPEN_ORDER,
            o.order_id,
            *self._order_contract(o.contract),
            o.action,
            o.quantity,
            o.order_type,
            _optional_double(o.limit_price),
            _optional_double(o.aux_price),
            o.tif,
            "",  # ocaGroup
            o.account,
            "",  # openClose
            0,  # origin: customer
            o.order_ref,
            o.client_id,
            o.perm_id,
            0,  # outsideRth
            0,  # hidden
            0,  # discretionaryAmt
            "",  # goodAfterTime
            "",  # sharesAllocation (deprecated)
            "",  # faGroup
            "",  # faMethod
            "",  # faPercentage
        ]
        if self.version < 177:
            fields.append("")  # faProfile
        fields += [
            "",  # modelCode
            "",  # goodTillDate
            "",  # rule80A
            "",  # percentOffset
            "",  # settlingFirm
            0,  # shortSaleSlot
            "",  # designatedLocation
            -1,  # exemptCode
            0,  # auctionStrategy
            "",  # startingPrice
            "",  # stockRefPrice
            "",  # delta
            "",  # stockRangeLower
            "",  # stockRangeUpper
            "",  # displaySize
            0,  # blockOrder
            0,  # sweepToFill
            0,  # allOrNone
            "",  # minQty
            3,  # ocaType
            0,  # eTradeOnly
            0,  # firmQuoteOnly
            "",  # nbboPriceCap
            0,  # parentId
            0,  # triggerMethod
            "",  # volatility
            0,  # volatilityType
            "",  # deltaNeutralOrderType (none: no delta-neutral fields follow)
            "",  # deltaNeutralAuxPrice
            0,  # continuousUpdate
            0,  # referencePriceType
            "",  # trailStopPrice
            "",  # trailingPercent
            "",  # basisPoints
            "",  # basisPointsType
            "",  # comboLegsDescrip
            0,  # combo legs
            0,  # order combo legs
            0,  # smart combo routing params
            "",  # scaleInitLevelSize
            "",  # scaleSubsLevelSize
            "",  # scalePriceIncrement (unset: no scale fields follow)
            "",  # hedgeType (none: no hedgeParam)
            0,  # optOutSmartRouting
            "",  # clearingAccount
            "",  # clearingIntent
            0,  # notHeld
            0,  # delta-neutral contract present
            "",  # algoStrategy (none: no params)
            0,  # solicited
            0,  # whatIf
            o.status,
            "",  # initMarginBefore
            "",  # maintMarginBefore
            "",  # equityWithLoanBefore
            "",  # initMarginChange
            "",  # maintMarginChange
            "",  # equityWithLoanChange
            "",  # initMarginAfter
            "",  # maintMarginAfter
            "",  # equityWithLoanAfter
            "",  # commission
            "",  # minCommission
            "",  # maxCommission
            "",  # commissionCurrency
            "",  # warningText
            0,  # randomizeSize
            0,  # randomizePrice
            0,  # conditions
            "",  # adjustedOrderType
            "",  # triggerPrice
            "",  # trailStopPrice
            "",  # lmtPriceOffset
            "",  # adjustedStopPrice
            "",  # adjustedStopLimitPrice
            "",  # adjustedTrailingAmount
            0,  # adjustableTrailingUnit
            "",  # softDollarTier name
            "",  # softDollarTier value
            "",  # softDollarTier displayName
            "",  # cashQty
            0,  # dontUseAutoPriceForHedge
            0,  # isOmsContainer
            0,  # discretionaryUpToLimitPrice
            0,  # usePriceMgmtAlgo
        ]
        if self.version >= 159:
            fields.append("")  # duration
        if self.version >= 160:
            fields.append("")  # postToAts
        if self.version >= 162:
            fields.append(0)  # autoCancelParent
        if self.version >= 170:
            fields += ["", "", "", "", ""]  # minTradeQty .. midOffsetAtHalf
        return frame(fields)

    def open_order_end(self) -> bytes:
        return frame([Out.OPEN_ORDER_END, 1])

    def completed_order(self, o: WireOrder) -> bytes:
        fields: list[Any] = [
            Out.COMPLETED_ORDER,
            *self._order_contract(o.contract),
            o.action,
            o.quantity,
            o.order_type,
            _optional_double(o.limit_price),
            _optional_double(o.aux_price),
            o.tif,
            "",  # ocaGroup
            o.account,
            "",  # openClose
            0,  # origin
            o.order_ref,
            o.perm_id,
            0,  # outsideRth
            0,  # hidden
            0,  # discretionaryAmt
            "",  # goodAfterTime
            "",  # faGroup
            "",  # faMethod
            "",  # faPercentage
        ]
        if self.version < 177:
            fields.append("")  # faProfile
        fields += [
            "",  # modelCode
            "",  # goodTillDate
            "",  # rule80A
            "",  # percentOffset
            "",  # settlingFirm
            0,  # shortSaleSlot
            "",  # designatedLocation
            -1,  # exemptCode
            "",  # startingPrice
            "",  # stockRefPrice
            "",  # delta
            "",  # stockRangeLower
            "",  # stockRangeUpper
            "",  # displaySize
            0,  # sweepToFill
            0,  # allOrNone
            "",  # minQty
            3,  # ocaType
            0,  # triggerMethod
            "",  # volatility
            0,  # volatilityType
            "",  # deltaNeutralOrderType
            "",  # deltaNeutralAuxPrice
            0,  # continuousUpdate
            0,  # referencePriceType
            "",  # trailStopPrice
            "",  # trailingPercent
            "",  # comboLegsDescrip
            0,  # combo legs
            0,  # order combo legs
            0,  # smart combo routing params
            "",  # scaleInitLevelSize
            "",  # scaleSubsLevelSize
            "",  # scalePriceIncrement
            "",  # hedgeType
            "",  # clearingAccount
            "",  # clearingIntent
            0,  # notHeld
            0,  # delta-neutral contract present
            "",  # algoStrategy
            0,  # solicited
            o.status,
            0,  # randomizeSize
            0,  # randomizePrice
            0,  # conditions
            "",  # trailStopPrice
            "",  # lmtPriceOffset
            "",  # cashQty
            0,  # dontUseAutoPriceForHedge
            0,  # isOmsContainer
            "",  # autoCancelDate
            o.filled,  # filledQuantity
            0,  # refFuturesConId
            0,  # autoCancelParent
            "",  # shareholder
            0,  # imbalanceOnly
            0,  # routeMarketableToBbo
            0,  # parentPermId
            o.completed_time,
            o.completed_status,
        ]
        if self.version >= 170:
            fields += ["", "", "", "", ""]  # minTradeQty .. midOffsetAtHalf
        return frame(fields)

    def completed_orders_end(self) -> bytes:
        return frame([Out.COMPLETED_ORDERS_END])


__all__ = ["UNSET_DOUBLE", "UNSET_INTEGER", "Encoder", "WireContract", "WireOrder", "ib_time"]
