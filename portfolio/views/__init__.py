"""The trader's pages: server-rendered from the database (never the broker), one module per page."""
