"""``python -m kexue_ref`` is the same CLI as the ``kexue-ref`` console script."""
from kexue_ref.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
