"""`python -m include.azure_standin --state-dir DIR [--port N] [--time-scale X]`: run the stand-in.

Listens on https://127.0.0.1:PORT (0 = any free port) and writes DIR/endpoints.json once it serves.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path

import uvicorn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="azure_standin", description=__doc__)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "0") or 0))
    parser.add_argument("--time-scale", type=float, default=None,
                        help="simulated seconds per real second (default: kept from the state dir, else 60)")
    parser.add_argument("--client-secret", default=os.environ.get("STANDIN_CLIENT_SECRET"),
                        help="secret of the local service principal (default: the well-known dev secret)")
    parser.add_argument("--arm-throttle", choices=("on", "off"), default=os.environ.get("STANDIN_ARM_THROTTLE") or "off",
                        help="refuse ARM requests with 429 when a token bucket (Azure's sizes) is empty; off: the "
                             "x-ms-ratelimit-remaining-* headers still count (default off, or STANDIN_ARM_THROTTLE)")
    parser.add_argument("--rbac", action="store_true", default=os.environ.get("STANDIN_RBAC", "") in ("1", "on", "true"),
                        help="check Azure RBAC on every ARM and Batch request made with an Entra ID token (default "
                             "off, or STANDIN_RBAC=1); PUT /_control/rbac switches it at run time")
    parser.add_argument("--log-level", default=os.environ.get("STANDIN_LOG_LEVEL", "warning"))
    args = parser.parse_args(argv)

    from .server import prepare, write_endpoints

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", args.port))
    except OSError as e:
        print(f"azure-standin: cannot listen on 127.0.0.1:{args.port}: {e}. Pick another PORT.", file=sys.stderr)
        return 2
    sock.listen(512)
    port = sock.getsockname()[1]
    state_dir = args.state_dir.resolve()
    (state_dir / "endpoints.json").unlink(missing_ok=True)
    ctx, app, certs = prepare(state_dir, port, args.time_scale, args.client_secret, args.arm_throttle == "on",
                             rbac=args.rbac)

    config = uvicorn.Config(app, ssl_certfile=certs["cert"], ssl_keyfile=certs["key"], log_level=args.log_level,
                            access_log=False, lifespan="off", timeout_keep_alive=30, date_header=False,
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    path = write_endpoints(state_dir, app.state.endpoints())
    print(f"azure-standin: serving https://127.0.0.1:{port} (state {state_dir}, time scale {ctx.clock.scale:g}); "
          f"endpoints in {path}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    server.run(sockets=[sock])
    ctx.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
