"""The door's command line: ``latentedit keys add|list|remove`` and the gateway's door flags."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console


def add_gateway_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--auth-file", default="", help="TOML of API keys; absent: no keys asked")
    p.add_argument("--tls-cert", default="", help="PEM certificate chain (enables TLS)")
    p.add_argument("--tls-key", default="", help="PEM private key of --tls-cert")
    p.add_argument("--tls-client-ca", default="", help="PEM CA: require client certificates")
    p.add_argument("--no-reflection", action="store_true", help="do not serve gRPC reflection")


def gateway_settings(args: argparse.Namespace) -> dict[str, Any]:
    """GatewaySettings keyword arguments from the flags above."""
    return {
        "auth_file": args.auth_file,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "tls_client_ca": args.tls_client_ca,
        "reflection": not args.no_reflection,
    }


def _keys(args: argparse.Namespace) -> None:
    from latentedit.server.auth_keys import KeyRing

    path = Path(args.file)
    ring = KeyRing.load(path) if path.exists() else KeyRing()
    out = Console()
    if args.action == "add":
        models = [m for m in args.models.split(",") if m] if args.models else []
        key = ring.add(args.name, models, args.rate, args.burst, args.max_inflight, args.admin)
        ring.save(path)
        out.print(f"key [bold]{args.name}[/] written to {path} (hashed); it is shown only once:")
        out.print(key, markup=False, highlight=False, soft_wrap=True)
    elif args.action == "remove":
        if ring.keys.pop(args.name, None) is None:
            raise SystemExit(f"no key named {args.name!r} in {path}")
        ring.save(path)
        out.print(f"removed key {args.name}")
    else:
        for k in ring.keys.values():
            allowed = ",".join(sorted(k.models)) or "*"
            out.print(
                f"{k.name}\tmodels={allowed}\trate={k.rate:g}\tmax_inflight={k.max_inflight}"
                f"\tadmin={k.admin}"
            )
    if args.action != "list":
        Console(stderr=True).print("running gateways load the change on SIGHUP (kill -HUP <pid>)")


def add_keys_parser(sub: Any) -> None:
    p = sub.add_parser("keys", help="manage API keys: add NAME | list | remove NAME")
    p.add_argument("action", choices=["add", "list", "remove"])
    p.add_argument("name", nargs="?", default="")
    p.add_argument("--file", default="keys.toml", help="the gateway's --auth-file")
    p.add_argument("--models", default="", help="comma-separated models it may use (default all)")
    p.add_argument("--rate", type=float, default=0.0, help="requests per second (0: unlimited)")
    p.add_argument("--burst", type=float, default=0.0, help="token bucket size (0: max(1, rate))")
    p.add_argument("--max-inflight", type=int, default=0, help="calls in flight (0: unlimited)")
    p.add_argument("--admin", action="store_true", help="may overwrite/delete others' directions")
    p.set_defaults(func=_keys_checked)


def _keys_checked(args: argparse.Namespace) -> None:
    if args.action in ("add", "remove") and not args.name:
        raise SystemExit(f"latentedit keys {args.action} needs a NAME")
    try:
        _keys(args)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
