"""``python tests/_store_child.py ARGV...``: the ``gear`` command with the store tests' models
installed (a registry model ``fake`` and the submissions ``gear_store_sub*``), run in a child
process so that a crash injected at a commit step (``GEAR_STORE_CRASH_AT``) ends only the child."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import make_hear_module  # noqa: E402


def install() -> None:
    from embeddings import registry
    from embeddings.base import ModelSpec

    for name in ("gear_store_fake", "gear_store_sub", "gear_store_sub2"):
        sys.modules[name] = make_hear_module(name)
    registry.REGISTRY["fake"] = ModelSpec(name="fake", module="gear_store_fake", description="fake model for store tests")


if __name__ == "__main__":
    install()
    from gear.cli import main

    sys.exit(main(sys.argv[1:]))
