"""alerts (``framewatch notify``): alerts in, deliveries to subscribers out.

In: ``alerts`` (``Alert``). Out: signed webhooks, Slack messages and e-mails, each alert once per
subscriber (a local delivery log), and ``dead-letters``. ``subscriptions`` reads who wants what,
``delivery`` sends; ``cli`` runs it as a component.
"""
