"""``engine._lazy.lazy_names``: a package's names that load on first use (PEP 562)."""

from __future__ import annotations

import sys

import pytest

from engine._lazy import lazy_names


def test_a_name_loads_its_module_on_first_use_and_stays(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    namespace = {"__name__": "pkg", "here": 1}
    getattr_, dir_ = lazy_names(namespace, {"rgb_to_hsv": "colorsys"})
    assert "colorsys" not in sys.modules
    assert dir_() == ["__name__", "here", "rgb_to_hsv"]

    fn = getattr_("rgb_to_hsv")
    assert fn(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert "colorsys" in sys.modules
    assert namespace["rgb_to_hsv"] is fn  # later lookups find it without the hook


def test_an_unknown_name_is_an_attribute_error_naming_the_package():
    getattr_, _ = lazy_names({"__name__": "pkg"}, {})
    with pytest.raises(AttributeError, match=r"module 'pkg' has no attribute 'nope'"):
        getattr_("nope")
