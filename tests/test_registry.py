import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.registry import Registry, UnknownNameError

PLUGIN = '''
"""A third-party method package."""
from harness.api import MethodContext, TransferPlan, build_plan, register_method


@register_method("shiny")
def shiny(ctx: MethodContext, *, weight: float = 1.0, label: str = "x") -> TransferPlan:
    """Copy source row 0 into every target row.

    Parameters:
        weight: weight of source row 0
        label: a free text label
    """
    return build_plan(ctx.n_target, ctx.n_source, rows={t: ([0], [weight]) for t in range(ctx.n_target)})


def mean(ctx, *, nothing: int = 0):
    """A plugin trying to take the built-in name 'mean'."""
    raise AssertionError("a plugin must never shadow a built-in")
'''


def make_plugin(root: Path) -> Path:
    """An installed distribution: a package plus a dist-info with entry points."""
    (root / "shinyplug").mkdir(parents=True)
    (root / "shinyplug" / "__init__.py").write_text(PLUGIN)
    info = root / "shinyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shinyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[harness.methods]\nshiny = shinyplug:shiny\nmean = shinyplug:mean\n")
    return root


def test_unknown_name_suggests_closest():
    reg = Registry("widget")
    reg.add("sembridge", object())
    reg.add("mean", object())
    with pytest.raises(UnknownNameError) as err:
        reg.get("sembrige")
    assert "did you mean 'sembridge'?" in str(err.value) and "mean, sembridge" in str(err.value)


def test_lazy_entry_imported_on_first_use():
    reg = Registry("thing")
    reg.add_lazy("join", "os.path:join")
    assert isinstance(reg.entry("join").target, str)
    assert reg.get("join") is os.path.join


def test_builtin_wins_and_first_registration_kept():
    reg = Registry("thing")
    reg.add("a", 1)
    reg.add("a", 2, origin="plugin:other")
    assert reg.get("a") == 1 and reg.entry("a").shadowed == ("plugin:other",)


def test_installed_plugin_is_listed_and_runs(tmp_path, monkeypatch, tiny_context):
    make_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    from harness import method_specs as api
    from harness.registry import methods

    monkeypatch.setattr(methods, "_plugins_loaded", False)
    entries = {e.name: e for e in methods}
    assert entries["shiny"].origin == "plugin:shinyplug"
    assert entries["mean"].origin == "builtin" and "plugin:shinyplug" in entries["mean"].shadowed
    spec = api.get_method("shiny")
    assert [p.name for p in spec.params] == ["weight", "label"] and spec.params[0].help == "weight of source row 0"
    plan = spec(tiny_context, weight=1.0)
    assert plan.validate() == [] and plan.sources_of(3) == [(0, 1.0)]
    assert api.get_method("mean").fn.__module__ == "methods.mean"
    methods._entries.pop("shiny")


def test_cli_lists_plugin_with_origin(tmp_path):
    make_plugin(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "harness.cli", "methods"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if "shiny" in line)
    assert "plugin:shinyplug" in line and "weight=1.0" in line
    assert "the built-in wins" in out.stderr


def readme_plugin_code() -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("```python\n# my_package/pieces.py")
    return readme[start + len("```python\n"): readme.index("```", start + 10)]


def test_readme_plugin_example_works(tmp_path, monkeypatch, tiny_context):
    """The plugin example in README.md, installed as a distribution with an entry point."""
    (tmp_path / "my_package").mkdir()
    (tmp_path / "my_package" / "__init__.py").write_text("")
    (tmp_path / "my_package" / "pieces.py").write_text(readme_plugin_code())
    info = tmp_path / "my_package-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text('[harness.methods]\npieces = "my_package.pieces:pieces"\n'.replace('"', ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    from harness import method_specs as api
    from harness.registry import methods

    monkeypatch.setattr(methods, "_plugins_loaded", False)
    try:
        assert methods.entry("pieces").origin == "plugin:my-package"
        plan = api.get_method("pieces")(tiny_context)
        assert plan.validate(d=8) == [] and plan.diagnostics()["mixed"] > 0
    finally:
        methods._entries.pop("pieces", None)


def test_builtin_file_registering_another_name_is_a_clear_error(tmp_path, monkeypatch):
    """methods/odd_file.py registering 'other-name': one error line naming the file, both names and the rule."""
    import methods as builtin_methods

    from harness import method_specs
    from harness.registry import methods
    from harness.util import HarnessError

    (tmp_path / "odd_file.py").write_text(
        "from harness.api import build_plan, register_method\n\n"
        "@register_method('other-name')\n"
        "def other(ctx):\n    return build_plan(ctx.n_target, ctx.n_source)\n")
    monkeypatch.setattr(builtin_methods, "__path__", [*builtin_methods.__path__, str(tmp_path)])
    method_specs.declare_builtin_methods()
    try:
        with pytest.raises(HarnessError, match=r"methods/odd_file\.py registers 'other-name', not 'odd-file'"):
            method_specs.get_method("odd-file")
    finally:
        methods._entries.pop("odd-file", None)
        methods._entries.pop("other-name", None)
        sys.modules.pop("methods.odd_file", None)
