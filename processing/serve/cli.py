"""``framewatch serve``: the JSON API over the sink's Parquet files, on serve_host:serve_port."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import click
import uvicorn

from framewatch.errors import ConfigError
from framewatch.processing.serve.app import ServeContext, create_app, tokens_path
from framewatch.processing.serve.auth import TokenStore
from framewatch.processing.serve.lake import lake_from_settings
from framewatch.service import HealthServer, load_settings, user_errors
from framewatch.settings import Settings

log = logging.getLogger(__name__)


def build_context(settings: Settings) -> ServeContext:
    """The app's context from settings: the sink's lake, the tokens (bootstrap admin + file)."""
    secret = settings.sink_s3_secret_access_key
    lake = lake_from_settings(settings.sink_url, settings.state_dir, settings.sink_s3_endpoint, settings.sink_s3_region,
                              settings.sink_s3_access_key_id, secret.get_secret_value() if secret else None)
    admin = settings.serve_admin_token.get_secret_value() if settings.serve_admin_token else None
    tokens = TokenStore(tokens_path(settings), admin)
    if not tokens.list():
        raise ConfigError("no API token: set FRAMEWATCH_SERVE_ADMIN_TOKEN or give a tokens file (FRAMEWATCH_SERVE_TOKENS_FILE)")
    return ServeContext(settings=settings, lake=lake, tokens=tokens)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one), bound before uvicorn starts so the URL is known."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """The API's base URL for a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/api/v1"


def make_server(ctx: ServeContext) -> uvicorn.Server:
    """A uvicorn server of the app that logs through the root logger (access lines carry no headers)."""
    config = uvicorn.Config(create_app(ctx), log_config=None, access_log=True, server_header=False)
    return uvicorn.Server(config)


def run(settings: Settings, announce: Callable[[str], None] = click.echo) -> None:
    """Serve until interrupted."""
    ctx = build_context(settings)
    sock = bind(settings.serve_host, settings.serve_port)
    server = make_server(ctx)
    # /metrics, /healthz, /readyz on the metrics port, like every component (not on the API's port,
    # which an Ingress may publish)
    health = HealthServer(ctx.registry, settings.metrics_host, settings.metrics_port,
                          ready=lambda: bool(server.started)).start()
    api = url_of(sock)
    announce(f"framewatch workbench at {api.removesuffix('/api/v1')}/ui/")
    announce(f"framewatch API at {api} (docs: {api}/docs); metrics at :{health.port}/metrics")
    try:
        server.run(sockets=[sock])
    finally:
        health.stop()
        if ctx.writer is not None:
            ctx.writer.close()
        sock.close()


@click.command("serve")
def serve() -> None:
    """Answer the JSON API over the sink's Parquet files (serve_host:serve_port, loopback by default)."""
    with user_errors():
        run(load_settings())
