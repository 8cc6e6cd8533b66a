from tests.orders import aapl, clock, paper_account, trader  # noqa: F401 - fixtures
