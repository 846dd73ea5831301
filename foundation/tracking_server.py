"""The MLflow tracking server that asks every client for a user and password: MLflow's basic-auth
app (`mlflow server --app-name basic-auth`), `python -m foundation.tracking_server` (`make
tracking-server`). On a cluster the head runs it on its private address (cluster/config.yaml).

Its settings are MLflow's own basic_auth.ini in a file outside the repository (--auth-config,
else MLFLOW_AUTH_CONFIG_PATH, else DEFAULT_CONFIG), for example:

    [mlflow]
    default_permission = READ
    database_uri = sqlite:////home/ray/mlflow-auth.db
    admin_username = admin
    admin_password = <12 characters or more>

The first start on an empty auth database creates the admin user from it
(MLFLOW_AUTH_ADMIN_USERNAME and MLFLOW_AUTH_ADMIN_PASSWORD win over the file where set; MLflow
refuses to start without a password); later starts ignore both. Clients give a user in
MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, which MLflow reads itself.
"""

from __future__ import annotations

import argparse
import configparser
import logging
import os
import secrets
import sys
import urllib.request
from pathlib import Path

from foundation.cli import stage_main
from foundation.tracking import DEFAULT_STORE, UI_ENV

log = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = Path("~/.cdmr/mlflow-auth.ini")
CONFIG_ENV = "MLFLOW_AUTH_CONFIG_PATH"  # MLflow's
ANY_OR_LOOPBACK = ("0.0.0.0", "::", "127.0.0.1", "localhost", "::1")
REQUIRED = ("default_permission", "database_uri")  # what MLflow reads without a fallback
# the key of the UI's sign-up form (CSRF); every worker of one start shares its environment
SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"


def auth_config(path: Path | None = None) -> Path:
    """The basic_auth.ini to start with: it exists, lies outside the repository and has
    MLflow's [mlflow] keys."""
    path = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"{path} does not exist: write MLflow's basic_auth.ini there "
                         f"([mlflow] {', '.join(REQUIRED)}, admin_username, admin_password; "
                         "docs/paper.md, the tracking server)")
    if path.is_relative_to(REPOSITORY):
        raise ValueError(f"{path} is inside the repository: keep the server's users and "
                         f"password outside it, e.g. {DEFAULT_CONFIG}")
    config = configparser.ConfigParser()
    config.read(path)
    missing = [key for key in REQUIRED if not config.has_option("mlflow", key)]
    if missing:
        raise ValueError(f"{path}: its [mlflow] section lacks {', '.join(missing)}")
    if config.has_option("mlflow", "admin_password") and path.stat().st_mode & 0o077:
        log.warning("%s holds a password that other users can read: chmod 600 %s", path, path)
    return path


def server_command(host: str, port: int, store: str, workers: int | None = None) -> list[str]:
    """`mlflow server --app-name basic-auth`; artifacts beside a SQLite store. On an address of
    its own, the server answers requests named for it or for the loopback (an SSH tunnel):
    MLflow's Host check knows only loopback and private ranges by default (403 otherwise)."""
    command = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
               "--host", host, "--port", str(port), "--backend-store-uri", store]
    if host not in ANY_OR_LOOPBACK:
        command += ["--allowed-hosts", ",".join([host, *(f"{name}:{port}" for name in
                                                         (host, "localhost", "127.0.0.1"))])]
    if store.startswith("sqlite:///"):
        folder = Path(store[len("sqlite:///"):]).resolve().parent
        command += ["--artifacts-destination", str(folder / "mlartifacts")]
    return command + (["--workers", str(workers)] if workers else [])


def answers(url: str) -> bool:
    """Whether a server answers at url (MLflow's /health needs no user)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@stage_main
def main(argv: list[str] | None = None) -> int:
    """MLflow's tracking server with its basic-auth app: every client gives a user and password."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m foundation.tracking_server",
                                description=main.__doc__)
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on; on a cluster, the head's private IP")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--store", default=f"sqlite:///{Path.cwd() / DEFAULT_STORE}",
                   help="the runs' backend store URI (default: %(default)s)")
    p.add_argument("--auth-config", type=Path,
                   help=f"MLflow's basic_auth.ini (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})")
    p.add_argument("--workers", type=int, help="server processes (MLflow's default: 4)")
    args = p.parse_args(argv)

    config = auth_config(args.auth_config)
    url = f"http://{args.host}:{args.port}"
    if answers(url):
        print(f"a server already answers at {url}: nothing started")
        return 0
    env = {**os.environ, **UI_ENV, CONFIG_ENV: str(config)}
    env.setdefault(SECRET_KEY_ENV, secrets.token_hex(32))
    print(f"MLflow with basic-auth on {url} (users: {config}); clients set "
          f"MLFLOW_TRACKING_URI={url}, MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
          flush=True)
    command = server_command(args.host, args.port, args.store, args.workers)
    os.execve(command[0], command, env)  # the server is this process: stop it by its id


if __name__ == "__main__":
    sys.exit(main())
