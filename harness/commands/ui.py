"""``harness ui [RESULTS_DIR]``: start the MLflow UI on a sweep's tracking store."""

from __future__ import annotations

import argparse
import errno
import socket
import subprocess
import sys
from pathlib import Path

from harness.errors import HarnessInputError

NAME = "ui"
HELP = "Start the MLflow UI on a sweep's store (bound to 127.0.0.1 unless --host says otherwise)."
STORE_NAME = "mlflow.db"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results", type=Path, nargs="?", default=Path("runs"),
        help="A sweep's output folder, or a folder holding exactly one (default: runs).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1).")
    parser.add_argument("--port", type=int, default=5000, help="TCP port (default 5000).")


def find_store(folder: Path) -> Path:
    """Return the SQLite store of the sweep in ``folder`` or in its only sweep subfolder."""
    if not folder.is_dir():
        raise HarnessInputError(f"results folder not found: {folder}")
    if (folder / STORE_NAME).is_file():
        return folder / STORE_NAME
    stores = sorted(folder.glob(f"*/{STORE_NAME}"))
    if len(stores) == 1:
        return stores[0]
    if not stores:
        raise HarnessInputError(
            f"no MLflow store in {folder}: expected {folder / STORE_NAME}; pass a sweep's output folder"
        )
    names = ", ".join(str(s.parent) for s in stores)
    raise HarnessInputError(f"{folder} contains several sweeps ({names}); pass one of them")


def check_port(host: str, port: int) -> None:
    """Raise ``HarnessInputError`` when ``host:port`` cannot be bound."""
    if not 0 < port < 65536:
        raise HarnessInputError(f"invalid --port {port}: expected 1 to 65535")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise HarnessInputError(
                    f"port {port} on {host} is already in use; pass another --port"
                ) from None
            raise HarnessInputError(f"cannot listen on {host}:{port}: {error.strerror}") from None


def server_command(store: Path, host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{store.resolve()}",
        "--host", host,
        "--port", str(port),
        "--workers", "1",
    ]


def run(args: argparse.Namespace) -> int:
    store = find_store(args.results)
    check_port(args.host, args.port)

    print(f"MLflow UI for {store.parent}: http://{args.host}:{args.port}  (Ctrl+C stops it)", flush=True)
    server = subprocess.Popen(server_command(store, args.host, args.port))
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait(timeout=30)
        return 0
