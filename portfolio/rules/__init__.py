"""Pure rules of the portfolio: no database, no I/O; services feed them and store what they return."""
