"""Pure rules of the infrastructure: no database, no I/O; services feed them and act on the answer."""
