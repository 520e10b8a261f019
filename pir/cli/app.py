"""The ``pir`` group, the settings it passes down, and the mapping of user errors to one line.

Nothing here imports torch, timm, Qdrant or Celery: ``pir --help``, ``pir CMD --help`` and usage errors must be as
fast as Python plus click and pydantic.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pir.core.errors import install_log_redaction, redact_text, redact_url, settings_secrets

if TYPE_CHECKING:
    from pir.core.config import Settings

log = logging.getLogger("pir.cli")

# Errors that are the user's input or environment, by module and class name. They are looked up in ``sys.modules``
# only: an exception can only be an instance of a class whose module was imported, so mapping an error never imports
# a heavy module (evaluating an ``except`` clause that imported them made every usage error take 20 s).
USER_ERRORS: tuple[tuple[str, str], ...] = (
    ("pir.core.errors", "PirUserError"),
    ("pir.encoder.device", "DeviceError"),
    ("pir.encoder.model", "ZeroShotTextError"),
    ("pir.encoder.train", "TrainError"),
    ("pir.ingest.images", "ImageLoadError"),
    ("pir.search.service", "EncoderMismatchError"),
    ("pir.search.store", "StoreError"),
    ("pir.workers.jobs", "JobError"),
    ("pir.workers.app", "WorkerConfigError"),
)


def is_user_error(exc: BaseException) -> bool:
    """True for errors that are shown as one ``Error: ...`` line rather than a traceback."""
    if isinstance(exc, (OSError, ValueError, KeyError)):
        return True
    for module, name in USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def one_line(exc: BaseException) -> str:
    """The error as one line (a KeyError's message without its quotes, newlines folded)."""
    msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(msg.split()) or type(exc).__name__


class PirGroup(click.Group):
    """The ``pir`` group: user-facing errors become ``Error: ...`` and exit code 1 (``-vv`` shows the traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:
            secrets = _secrets(ctx)
            server = _server_error(e, ctx)
            if server:
                if logging.getLogger().level <= logging.DEBUG:
                    log.debug("traceback of the error below:", exc_info=True)
                raise click.ClickException(redact_text(server, secrets)) from None
            if not is_user_error(e):  # a bug: its traceback, through logging so that it is redacted too
                log.error("internal error (a bug in pir; please report it):", exc_info=True)
                raise click.ClickException(redact_text(f"internal error: {one_line(e)}", secrets)) from None
            if logging.getLogger().level <= logging.DEBUG:
                log.debug("traceback of the error below:", exc_info=True)
            raise click.ClickException(redact_text(one_line(e), secrets)) from None


def _server_error(exc: BaseException, ctx: click.Context) -> str | None:
    """One line for a Qdrant server that cannot be reached or refuses a request (qdrant-client, gRPC), naming the
    URL with its password redacted; None for any other error. Looked up by module name: nothing is imported."""

    module = type(exc).__module__ or ""
    s = (ctx.obj or {}).get("settings")
    url = redact_url(getattr(getattr(s, "qdrant", None), "url", None)) or "the Qdrant server"
    if module.startswith("qdrant_client") and type(exc).__name__ == "ResponseHandlingException":
        return f"cannot reach the Qdrant server at {url} ({one_line(exc)}); check PIR_QDRANT__URL and that it runs"
    if module.startswith("qdrant_client") and type(exc).__name__ == "UnexpectedResponse":
        return f"the Qdrant server at {url} refused the request: {one_line(exc)[:300]}"
    if module.startswith("grpc") and hasattr(exc, "code") and hasattr(exc, "details"):
        try:
            detail = f"{exc.code().name}: {exc.details()}"
        except Exception:  # noqa: BLE001  (an RpcError without a call)
            detail = one_line(exc)
        return f"the Qdrant server at {url} (gRPC) failed: {' '.join(str(detail).split())[:300]}; check PIR_QDRANT__URL"
    return None


def _secrets(ctx: click.Context) -> set[str]:

    s = (ctx.obj or {}).get("settings")
    return settings_secrets(s) if s is not None else set()


#: Loggers that print request URLs and headers: WARNING unless ``-vv`` (and redacted even then).
NOISY_LOGGERS = ("httpx", "httpcore", "urllib3", "hpack", "kombu", "amqp")


def setup_logging(verbose: int, secrets: set[str] | frozenset[str] = frozenset()) -> None:
    """Root logging for ``-v`` / ``-vv``, with every record redacted (URL passwords, ``secrets``) at every level."""

    install_log_redaction(secrets)
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)  # library warnings go through the same redaction
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)


@click.group(cls=PirGroup)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Data directory (PIR_DATA_DIR).")
@click.option(
    "--device", default=None, help="cpu | cuda | cuda:N (PIR_ENCODER__DEVICE). CUDA without CUDA is an error."
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug and tracebacks).")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, device: str | None, verbose: int) -> None:
    """pir: find prior-art patent drawings similar to a new one."""
    from pir.core.config import get_settings  # lazy: start-up (pydantic_settings)

    setup_logging(verbose)  # URL passwords redacted from the very first record; the settings' secrets below
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if device is not None:
        overrides["encoder"] = {"device": device}
    ctx.ensure_object(dict)
    ctx.obj["settings"] = get_settings(**overrides)
    install_log_redaction(settings_secrets(ctx.obj["settings"]))


def settings(ctx: click.Context, *, encoder: str | None = None, collection: str | None = None) -> Settings:
    """The settings tree of this invocation, with a command's ``--encoder`` / ``--collection`` applied."""
    s: Settings = ctx.obj["settings"]
    if encoder:
        s = s.model_copy(update={"encoder": s.encoder.model_copy(update={"name": encoder})})
    if collection:
        s = s.model_copy(update={"qdrant": s.qdrant.model_copy(update={"collection": collection})})
    return s


def parse_pairs(items: tuple[str, ...], option: str) -> dict[str, str]:
    """``("a=b", ...)`` -> ``{"a": "b"}``; a malformed item is a usage error naming the option."""
    out: dict[str, str] = {}
    for it in items:
        if "=" not in it:
            raise click.BadParameter(f"{it!r}: expected FIELD=COLUMN", param_hint=option)
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def options(*decorators: Any) -> Any:
    """Apply a list of click option decorators in reading order (shared option sets)."""

    def apply(f: Any) -> Any:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


def model_options(model: Any, *, skip: tuple[str, ...] = ()) -> Any:
    """Click options generated from a pydantic model's scalar fields (``--field-name``), help from their descriptions.

    Every option defaults to None, so only what the user gives overrides the model's own defaults (shown in the help)
    or a ``--config`` file. Booleans get ``--x/--no-x``, ``Literal`` fields a choice, tuples a comma-separated list.
    """
    from typing import Literal, get_args, get_origin

    decorators = []
    for name, field in model.model_fields.items():
        ann, flag = field.annotation, "--" + name.replace("_", "-")
        args = [a for a in get_args(ann) if a is not type(None)]
        if get_origin(ann) is not Literal and type(None) in get_args(ann) and len(args) == 1:
            ann = args[0]  # X | None
        origin = get_origin(ann)
        kind: Any = {int: int, float: float, str: str}.get(ann)
        if origin is Literal:
            kind = click.Choice([str(a) for a in get_args(ann)])
        elif origin is tuple:
            kind = str
        if name in skip or (kind is None and ann is not bool):
            continue
        text = f"{field.description or ''} (default: {field.default})".strip()
        if ann is bool:
            decorators.append(click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=text))
        else:
            decorators.append(click.option(flag, name, type=kind, default=None, help=text))
    return options(*decorators)


def model_from_options(model: Any, config_file: Path | None, given: dict[str, Any], **extra: Any) -> Any:
    """An instance of ``model``: its defaults, then a JSON ``config_file``, then the command-line options."""
    import json
    from typing import get_origin

    data: dict[str, Any] = json.loads(config_file.read_text()) if config_file else {}
    for name, value in given.items():
        if value is None:
            continue
        ann = model.model_fields[name].annotation
        is_tuple = get_origin(ann) is tuple or "tuple" in str(ann)
        data[name] = tuple(v.strip() for v in value.split(",") if v.strip()) if is_tuple else value
    data.update(extra)
    return model(**data)
