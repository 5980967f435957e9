"""``python -m service``: the same as the ``guardrail`` command."""

from service.cli import main

# The guard matters: worker processes are spawned and re-import this module.
if __name__ == "__main__":
    raise SystemExit(main())
