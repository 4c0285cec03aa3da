"""``podshim-runc``: a runc wrapper that installs podshim's hooks, for containerd (which has no
hooks.d support, runtime-integration.md §1.6).

Point containerd's runc ``BinaryName`` at this program. On ``create`` and ``run`` it adds a
``createRuntime`` and a ``poststop`` hook running ``podshim hook`` to ``<bundle>/config.json``
(once: an entry with the same path and arguments is not added twice), only for Kubernetes pod
containers (not sandboxes), then it execs the real runc with the unchanged arguments, the way
nvidia-container-runtime does. Every other command goes straight to runc.

Configuration (environment, as containerd passes its own to the runtime):

* ``PODSHIM_RUNC``: the real runc (default: the first ``runc`` on PATH that is not this program);
* ``PODSHIM_HOOK``: the hook program: ``podshim`` (run as ``podshim hook ...``) or
  ``podshim-hook`` (run as ``podshim-hook ...``); default: the ``podshim-hook`` installed beside
  this Python interpreter, else this interpreter running ``-m shim hook``;
* ``PODSHIM_HOOK_ARGS``: extra ``podshim hook`` options, shell-quoted
  (e.g. ``--config /etc/podshim/kubelet-config.yaml --state-dir /var/lib/podshim``);
* ``PODSHIM_HOOK_TIMEOUT``: the hook timeout in seconds (default 30).

runc runs for every container operation (create, start, state, kill, delete, ...), so the
wrapper imports only ``os`` and ``sys`` before it execs runc; what a ``create`` needs (JSON, the
OCI annotations, a temporary file) is imported for a ``create`` only. Installed as a plain
script (scripts/podshim-runc), not a console script, whose wrapper would import ``re`` first.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # mypy treats the name as true; typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from typing import Any

# runc's global options that take a value (everything else before the command is a flag).
GLOBAL_WITH_VALUE = frozenset({"--root", "--log", "--log-format", "--criu", "--rootless"})
INJECT_COMMANDS = frozenset({"create", "run"})
DEFAULT_TIMEOUT = 30
# Replaces this process with runc; a module attribute so tests can stand in for it.
exec_runc: Callable[[str, list[str]], object] = os.execv


class WrapperError(RuntimeError):
    """The wrapper cannot do its job (one line; runc is not run)."""


def split_command(argv: Sequence[str]) -> tuple[str | None, int]:
    """runc's subcommand and its index in ``argv`` (the arguments after the program name)."""
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            return (argv[index + 1], index + 1) if index + 1 < len(argv) else (None, index)
        if not word.startswith("-"):
            return word, index
        index += 2 if word in GLOBAL_WITH_VALUE else 1
    return None, index


def bundle_of(arguments: Sequence[str], cwd: str) -> str:
    """The ``--bundle``/``-b`` value among a create/run command's arguments (default: cwd)."""
    for index, word in enumerate(arguments):
        for flag in ("--bundle", "-b"):
            if word == flag and index + 1 < len(arguments):
                return os.path.join(cwd, arguments[index + 1])
            if word.startswith(flag + "="):
                return os.path.join(cwd, word[len(flag) + 1 :])
    return cwd


HOOK_SCRIPT = "podshim-hook"


def hook_command(environ: dict[str, str]) -> list[str]:
    """The program and leading arguments of the hook command (``PODSHIM_HOOK`` above). argv[0]
    is the full program path: a venv's Python finds its packages from it."""
    program = environ.get("PODSHIM_HOOK")
    if program:
        return [program] if os.path.basename(program) == HOOK_SCRIPT else [program, "hook"]
    script = os.path.join(os.path.dirname(sys.executable), HOOK_SCRIPT)
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "shim", "hook"]


def hook_entry(stage: str, environ: dict[str, str]) -> dict[str, Any]:
    """The OCI hook entry running ``podshim hook <stage>`` (see :func:`hook_command`)."""
    command = hook_command(environ)
    import shlex

    extra = shlex.split(environ.get("PODSHIM_HOOK_ARGS", ""))
    timeout = int(environ.get("PODSHIM_HOOK_TIMEOUT", DEFAULT_TIMEOUT))
    return {"path": command[0], "args": [*command, *extra, stage], "timeout": timeout}


def inject(document: dict[str, Any], environ: dict[str, str]) -> bool:
    """Add podshim's createRuntime and poststop hooks to a config; False if nothing changed."""
    raw = document.get("annotations")
    annotations = {str(k): v for k, v in raw.items() if isinstance(v, str)} if isinstance(raw, dict) else {}
    from shim.frontends import oci

    if not oci.identify(annotations).is_pod_container:
        return False
    hooks = document.setdefault("hooks", {})
    changed = False
    for stage in ("createRuntime", "poststop"):
        entry = hook_entry(stage, environ)
        entries = hooks.setdefault(stage, [])
        if not any(e.get("path") == entry["path"] and e.get("args") == entry["args"] for e in entries):
            entries.append(entry)
            changed = True
    return changed


def _rewrite(path: Path, document: dict[str, Any]) -> None:
    import json
    import tempfile
    from pathlib import Path

    # Atomic: runc must never read a half-written config.json.
    fd, temp = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
        os.chmod(temp, path.stat().st_mode & 0o7777)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def modify_bundle(bundle: str, environ: dict[str, str]) -> bool:
    from shim.frontends import oci, plainjson

    path = oci.config_path(bundle)
    try:
        document = plainjson.loads(path.read_bytes())
    except (OSError, ValueError) as err:
        raise WrapperError(f"{path}: cannot read: {err}") from None
    if not isinstance(document, dict):
        raise WrapperError(f"{path}: not a JSON object")
    if not inject(document, environ):
        return False
    _rewrite(path, document)
    return True


def find_runc(environ: dict[str, str]) -> str:
    explicit = environ.get("PODSHIM_RUNC")
    if explicit:
        return explicit
    me = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    for directory in environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", "runc")
        if os.access(candidate, os.X_OK) and os.path.realpath(candidate) != me:
            return candidate
    raise WrapperError("no runc found on PATH (set PODSHIM_RUNC)")


def main(argv: Sequence[str] | None = None) -> int:
    """Inject the hooks if this is a create/run, then exec runc (returns only on failure)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ)
    try:
        runc = find_runc(environ)
        command, index = split_command(arguments)
        if command in INJECT_COMMANDS:
            modify_bundle(bundle_of(arguments[index + 1 :], os.getcwd()), environ)
        exec_runc(runc, [runc, *arguments])
    except (WrapperError, ValueError) as err:  # oci.OCIError is a ValueError
        sys.stderr.write(" ".join(f"podshim-runc: {err}".split()) + "\n")
        return 2
    except OSError as err:
        sys.stderr.write(f"podshim-runc: cannot run runc: {err.strerror}\n")
        return 3
    return 0  # only reached when exec_runc is replaced (tests)


if __name__ == "__main__":
    sys.exit(main())
