"""``python -m selfsup ...``: the same as the ``selfsup`` command (works under torchrun)."""

from __future__ import annotations

from selfsup.cli.main import main

if __name__ == "__main__":
    main()
