"""The ``mn`` command line. ``main()`` is the console-script entry point.

Every failure a user can cause ends as one ``error: …`` line per problem on stderr and a
non-zero exit; a Python traceback is shown only with ``MIRROR_NEURON_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys

from ..errors import ManifestError, MirrorNeuronError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    from . import render

    try:
        return _main(argv)
    finally:
        with render.stdout_guard():  # what is still buffered, for a reader that may have gone
            sys.stdout.flush()


def _main(argv: list[str] | None) -> int:
    import click

    from . import render
    from .app import cli

    try:
        # Without standalone mode click returns an ``Exit``'s code instead of raising it.
        code = cli.main(args=argv, prog_name="mn", standalone_mode=False)
        return code if isinstance(code, int) else EXIT_OK
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:  # a confirmation answered "no" (or Ctrl-C at the prompt)
        print("aborted", file=sys.stderr)
        return EXIT_FAILED
    except ManifestError as exc:
        for line in exc.errors:
            _error_line(line)
        _json_error(argv, str(exc), exc.errors)
        return EXIT_FAILED
    except MirrorNeuronError as exc:
        _error_line(str(exc))
        _json_error(argv, str(exc), [str(exc)])
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # a write to stdout that render did not guard
        render.silence_stdout()
        return EXIT_OK
    except Exception as exc:  # the last line of defence: no traceback for users
        if os.environ.get("MIRROR_NEURON_DEBUG"):
            raise
        _error_line(f"internal error: {type(exc).__name__}: {exc}")
        print("hint: set MIRROR_NEURON_DEBUG=1 to see the traceback", file=sys.stderr)
        return EXIT_FAILED


def _error_line(text: str) -> None:
    """``error: …`` on stderr; errors quote untrusted text (ids, server replies), so it is cleaned."""
    from .render import clean

    print(f"error: {clean(text)}", file=sys.stderr)


def _json_error(argv: list[str] | None, message: str, errors: list[str]) -> None:
    """With ``--json``, stdout still carries exactly one JSON object, even for an error."""
    args = sys.argv[1:] if argv is None else argv
    if "--json" in args:
        from .render import print_json_line

        print_json_line({"ok": False, "error": message, "errors": errors})


def run() -> None:
    sys.exit(main())
