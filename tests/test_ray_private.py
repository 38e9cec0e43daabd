"""The private Ray API the project uses (``multistage/ray_private.py``) and the ``RAY_*``
variables its configs set are still there: after a Ray upgrade, this fails naming each
one that moved, before a replica does at run time. No cluster."""

import re
from pathlib import Path

import pytest
import ray
from conftest import ROOT

from multistage import ray_private

RAY_SOURCE = Path(ray.__file__).parent
# Where the project sets Ray's settings by environment.
SETTINGS = [
    *ROOT.glob("configs/*.env"),
    *ROOT.glob("configs/*.yaml"),
    *ROOT.glob("ops/*.py"),
    *ROOT.glob(".ci/*.sh"),
]


@pytest.mark.parametrize("name", sorted(ray_private.SYMBOLS))
def test_each_private_symbol_is_where_ray_private_reaches_it(name):
    try:
        ray_private.SYMBOLS[name]()
    except (AttributeError, ImportError, KeyError) as error:
        pytest.fail(f"Ray {ray.__version__} has no {name} ({error}); see multistage/ray_private.py")


def test_the_ray_version_is_the_one_checked():
    # A new minor version: read ray_private's reasons again, then move CHECKED_ON.
    assert ray.__version__.rsplit(".", 1)[0] == ray_private.CHECKED_ON.rsplit(".", 1)[0]


def _variables_set() -> set[str]:
    return {name for path in SETTINGS for name in re.findall(r"\bRAY_[A-Z_]+\b", path.read_text())}


def test_every_ray_variable_the_configs_set_is_read_by_ray():
    variables = _variables_set()
    assert "RAY_SERVE_ENABLE_HA_PROXY" in variables, variables  # the settings were found
    source = "\n".join(path.read_text() for path in RAY_SOURCE.rglob("*.py"))
    unread = sorted(name for name in variables if not re.search(rf"\b{name}\b", source))
    assert not unread, f"Ray {ray.__version__} reads none of {unread}"
