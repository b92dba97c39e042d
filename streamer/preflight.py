"""Checks of a command line before the model loads: a bad input costs a second, not a model load.

`check_run`, `check_serve` and `check_demo` raise `UserError` with one sentence that names the
culprit and what would work (the CLI prints it, exit code 2). Each looks only at what can be told
without the model and without the network: prompts, sources by their text (a local file must be
there; a URL's host is not looked up), outputs' folders, `--model`, `--checkpoint`, `--device`
(torch is imported only for a CUDA device), and that the API's port is free.

The parsing is the engine's own: `resolve_source` (streamer/sources) decides what a source string
is, `local_file` what a file source refuses, `is_push_target` which `--out` is an RTSP push.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import tempfile
from collections.abc import Iterable
from pathlib import Path

from protocols.credentials import redact_url
from streamer.launch import UserError, api_config, check_model, model_choice, prompt_concept
from streamer.outputs import OutputError, is_push_target, open_output
from streamer.sources import FileConfig, SourceError, WebcamConfig, resolve_source
from streamer.sources.file import local_file
from streamer.sources.rtsp import network_url

# --- commands --------------------------------------------------------------------------------


def check_run(args: argparse.Namespace) -> None:
    """`streamer run`: prompts, redactions, sources, outputs, the event log, the model, the port."""
    if not args.prompt:
        raise UserError("give at least one --prompt TEXT")
    check_prompts(args.prompt, "--prompt")
    check_prompts(args.redact, "--redact")
    for source in args.sources:
        check_source(source, loop=args.loop)
    for target in args.out:
        check_output(target)
    if args.events not in (None, "ws"):
        check_new_file(args.events, "--events")
    check_model(model_choice(args))
    if args.events == "ws":
        check_out_dir(args.out_dir)
        api = api_config(args)
        check_port_free(api.host, api.port)


def check_serve(args: argparse.Namespace) -> None:
    """`streamer serve`: the event log, the model, the port."""
    if args.events is not None:
        check_new_file(args.events, "--events")
    check_model(model_choice(args))
    check_out_dir(args.out_dir)
    api = api_config(args)
    check_port_free(api.host, api.port)


def check_demo(args: argparse.Namespace) -> None:
    """`streamer demo`: prompts, the source, `--out-dir`, the model, and the port with --serve."""
    check_prompts(args.prompt or (), "--prompt")
    check_source(args.source)
    check_new_folder(args.out_dir, "--out-dir")
    check_model(model_choice(args))
    if args.serve:
        api = api_config(args)
        check_port_free(api.host, api.port)


# --- inputs ----------------------------------------------------------------------------------


def check_prompts(texts: Iterable[str], flag: str) -> None:
    for text in texts:
        prompt_concept(text, flag)  # the rule the commands build their concepts with


def check_source(text: str, *, loop: bool = False) -> None:
    """What a source string can be told by its text and the file system; no network is touched."""
    try:
        plan = resolve_source(text, loop=loop)
        if isinstance(plan.config, FileConfig):
            local_file(plan.target, plan.config)
    except SourceError as error:
        raise UserError(str(error)) from None
    if isinstance(plan.config, WebcamConfig) and not os.path.exists(plan.target):
        raise UserError(f"no camera at {plan.target}: ls /dev/video* lists the cameras there are")


# --- outputs ---------------------------------------------------------------------------------


def check_output(target: str) -> None:
    """`--out`: an RTSP push URL by its syntax, a file by its folder (there, writable) and suffix."""
    if is_push_target(target):
        try:
            network_url(target)
        except SourceError as error:
            raise UserError(f"--out {error}") from None
    else:
        check_new_file(target, "--out")
    try:
        open_output(target)  # opens nothing: the container suffix, the push URL's scheme
    except OutputError as error:
        raise UserError(f"--out {redact_url(target)}: {error}") from None


def check_new_file(path_text: str, flag: str) -> None:
    """A file the command will write: not a folder, in a folder that exists and takes files."""
    path = Path(path_text)
    if path.is_dir():
        raise UserError(f"{flag} {path_text}: that is a folder; name a file in it")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"{flag} {path_text}: folder {folder} does not exist; create it first")
    if reason := _unwritable(folder):
        raise UserError(f"{flag} {path_text}: cannot write in {folder} ({reason}); "
                        "name a folder you can write to")  # fmt: skip
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path_text}: the file is read-only; name another")


def check_out_dir(path_text: str | None) -> None:
    """`--out-dir` (run, serve): an existing folder, since API clients' files go there."""
    if path_text is not None and not Path(path_text).is_dir():
        raise UserError(
            f"--out-dir {path_text}: no such folder; make it first, or leave the flag out to use "
            "the working directory"
        )


def check_new_folder(path_text: str, flag: str) -> None:
    """A folder the command creates if need be and writes in: its nearest existing ancestor must
    be a folder that takes files."""
    existing = Path(path_text)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag} {path_text}: {existing} is a file, not a folder")
    if reason := _unwritable(existing):
        raise UserError(f"{flag} {path_text}: cannot write in {existing} ({reason}); "
                        "name a folder you can write to")  # fmt: skip


def _unwritable(folder: Path) -> str | None:
    """Why no file can be made in `folder`, or None. An unnamed temporary file tells the truth
    where `os.access` does not (root, read-only mounts)."""
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        return error.strerror or type(error).__name__
    return None


# --- the API ---------------------------------------------------------------------------------


def check_port_free(host: str, port: int) -> None:
    """Bind `host:port` as the API will (SO_REUSEADDR, each address the host resolves to), then
    let go. Port 0 (the system picks one) is always free."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)  # fmt: skip
    except socket.gaierror as error:
        raise UserError(
            f"--host {host}: not an address of this machine ({error.strerror})"
        ) from None
    for family, kind, proto, _, address in dict.fromkeys(infos):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRNOTAVAIL and family == socket.AF_INET6:
                    continue  # IPv6 disabled: the server skips that family too
                raise UserError(_bind_failure(host, port, error)) from None


def _bind_failure(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use; pass --port with a free one"
    if error.errno == errno.EACCES:
        return f"port {port} on {host}: permission denied (ports below 1024 need root); pass --port"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"--host {host}: not an address of this machine; pass --host 127.0.0.1 or 0.0.0.0"
    return f"cannot listen on {host}:{port} ({error.strerror}); pass another --host or --port"
