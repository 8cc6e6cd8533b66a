"""Alert channels: how one message reaches email, Slack, Discord, Telegram's bot API or a webhook.

Every outside system is reached here and nowhere else. A channel's URL and token are secrets: an
error or an answer is recorded and logged only after ``redacted`` has removed them (a Telegram
token sits inside the URL; Slack and Discord webhook URLs are themselves credentials).
"""

import logging
from dataclasses import dataclass

import requests
from django.conf import settings
from django.core.mail import send_mail

from core.models import Alert, AlertChannel, ChannelKind

logger = logging.getLogger(__name__)


class TransientDeliveryError(Exception):
    """Worth another try later: a timeout, a refused connection, a 429 or a 5xx."""


class DeliveryRefusedError(Exception):
    """The channel said no for good (a 4xx other than 429, a bad address): retrying will not help."""


@dataclass(frozen=True)
class Sent:
    status_code: int | None
    detail: str


def redacted(text: str, channel: AlertChannel) -> str:
    """``text`` without the channel's URL or token (nor the URL's path, which holds Slack's secret)."""
    secrets = [s for s in (channel.url, channel.token) if s]
    if channel.url and "/" in channel.url.split("://", 1)[-1]:
        secrets.append(channel.url.split("://", 1)[-1].split("/", 1)[1])
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "[secret]")
    return text


def _request(channel: AlertChannel, alert: Alert, text: str) -> tuple[str, dict, dict]:
    """(url, JSON payload, headers) in the format the channel's service reads."""
    headers: dict = {}
    if channel.kind == ChannelKind.SLACK:
        return channel.url, {"text": text}, headers
    if channel.kind == ChannelKind.DISCORD:
        return channel.url, {"content": text[:2000]}, headers  # Discord's limit
    if channel.kind == ChannelKind.TELEGRAM:
        base = settings.ALERT_TELEGRAM_API.rstrip("/")
        return f"{base}/bot{channel.token}/sendMessage", {"chat_id": channel.address, "text": text[:4096]}, headers
    if channel.token:
        headers["Authorization"] = f"Bearer {channel.token}"
    payload = {
        "kind": alert.kind,
        "title": alert.title,
        "body": alert.body,
        "text": text,
        "account": getattr(alert.account, "account_id", None) if alert.account_id else None,
        "held_back": alert.held_back,
        "at": alert.created_at.isoformat(),
        "id": alert.pk,
    }
    return channel.url, payload, headers


def channel_send(*, channel: AlertChannel, alert: Alert, text: str) -> Sent:
    """Send once. Raises TransientDeliveryError or DeliveryRefusedError (messages already redacted)."""
    if channel.kind == ChannelKind.EMAIL:
        address = channel.address or channel.user.email
        if not address:
            raise DeliveryRefusedError("no email address: give the channel one, or the user an email")
        try:
            send_mail(
                subject=f"[IBKR ledger] {alert.title}"[:200],
                message=text,
                from_email=settings.ALERT_EMAIL_FROM,
                recipient_list=[address],
            )
        except OSError as exc:  # SMTP unreachable, refused
            raise TransientDeliveryError(f"email to {address}: {type(exc).__name__}: {exc}") from None
        return Sent(None, f"emailed {address}")
    url, payload, headers = _request(channel, alert, text)
    if not url.startswith(("http://", "https://")) or (channel.kind == ChannelKind.TELEGRAM and not channel.token):
        raise DeliveryRefusedError(f"{channel.get_kind_display()}: no URL or token configured")
    try:
        answer = requests.post(url, json=payload, headers=headers, timeout=settings.ALERT_HTTP_TIMEOUT)
    except requests.RequestException as exc:
        raise TransientDeliveryError(redacted(f"{type(exc).__name__}: {exc}", channel)) from None
    detail = redacted(f"HTTP {answer.status_code}: {answer.text[:300]}", channel)
    if answer.status_code == 429 or answer.status_code >= 500:
        raise TransientDeliveryError(detail)
    if answer.status_code >= 400:
        raise DeliveryRefusedError(detail)
    return Sent(answer.status_code, detail)
