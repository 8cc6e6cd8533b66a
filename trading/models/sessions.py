"""Trading sessions: what was in force while orders were placed (the trade record's ``session_id``).

A session starts when the trading processes start or a trading day begins: its start, the product's
version and the hash of the risk and strategy settings in force. There is one per ``(day, bot_version,
config_hash)`` (a unique constraint): a restart with the same version and settings carries on the
day's session, a deploy or a settings change starts a new one.
"""

from django.db import models


class TradingSession(models.Model):
    day = models.DateField(help_text="The trade date (New York) it belongs to.")
    bot_version = models.CharField(max_length=32, help_text="TRADING_BOT_VERSION in force.")
    config_hash = models.CharField(max_length=16, help_text="Hash of the risk and strategy settings in force.")
    settings_snapshot = models.JSONField(default=dict, help_text="The settings the hash is of.")
    started_at = models.DateTimeField()
    started_by = models.CharField(max_length=16, help_text="What started it: worker, order, monitor.")

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["day", "bot_version", "config_hash"], name="trading_session_unique"),
        ]

    def __str__(self) -> str:
        return self.session_id

    @property
    def session_id(self) -> str:
        """Readable and unique: the day, the version and the hash's first 8 digits."""
        return f"{self.day.isoformat()}-v{self.bot_version}-{self.config_hash[:8]}"
