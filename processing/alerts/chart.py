"""The small chart an alert message carries: the frame's share in the alert's window against its
baseline, as PNG, rendered here (Altair + vl-convert, data inline, nothing fetched) from the alert's
own evidence, so the notifier needs no lake."""

from __future__ import annotations

import logging
import threading

import altair as alt
import vl_convert as vlc

from framewatch.contracts import Alert

log = logging.getLogger(__name__)

_render = threading.Lock()  # vl-convert's engine is shared by the delivery threads


def evidence_png(alert: Alert, scale: float = 2.0) -> bytes | None:
    """PNG of baseline vs observed share; None (logged) when it cannot be drawn: a message
    without its chart is better than no message."""
    rows = [{"when": "baseline", "share": alert.baseline_share},
            {"when": f"{alert.window_start:%d %b %H:%M}-{alert.window_end:%H:%M} UTC", "share": alert.observed_share}]
    chart = alt.Chart(alt.Data(values=rows), title=f"{alert.frame} in {alert.watch_id}", width=320, height=140).mark_bar(
    ).encode(
        x=alt.X("share:Q", axis=alt.Axis(format="%", title="share of items"), scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("when:N", title=None, sort=None),
        color=alt.Color("when:N", legend=None, scale=alt.Scale(range=["#9aa5b1", "#b3261e"])),
    )
    try:
        with _render:
            return bytes(vlc.vegalite_to_png(chart.to_dict(), scale=scale, allowed_base_urls=[]))
    except Exception as exc:  # a renderer failure must not stop the delivery
        log.warning("alert chart not drawn for %s: %s", alert.key, type(exc).__name__)
        return None
