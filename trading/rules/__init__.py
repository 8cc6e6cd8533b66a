"""Pure bookkeeping over fills (no database): lots and realized P&L, day trades, cash-account rules."""
