"""The README's command reference is `--help`, and `--help` alone is enough for an installed package:
it lists every setting (as the README's table does), names the README's URL and `mycase-sync config`.

After changing a command, an option or a help text: python scripts/readme_reference.py
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from mycase_sync import config
from mycase_sync.cli import README as README_PLACE
from mycase_sync.settings_help import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def script():
    spec = importlib.util.spec_from_file_location("readme_reference", ROOT / "scripts" / "readme_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_reference_is_what_help_prints():
    readme = README.read_text(encoding="utf-8")
    assert script().updated(readme) == readme, "the README's command reference is stale: run python scripts/readme_reference.py"


def test_the_script_rewrites_a_stale_reference_and_check_says_so(tmp_path, monkeypatch, capsys):
    module = script()
    readme = README.read_text(encoding="utf-8")
    start, end = readme.index(module.BEGIN), readme.index(module.END)
    stale = readme[:start] + module.BEGIN + "\n### `mycase-sync old-command`\n" + readme[end:]
    copy = tmp_path / "README.md"
    copy.write_text(stale, encoding="utf-8")
    monkeypatch.setattr(module, "README", copy)
    assert module.main(["--check"]) == 1 and "run python scripts/readme_reference.py" in capsys.readouterr().err
    assert module.main([]) == 0 and copy.read_text(encoding="utf-8") == readme
    assert module.main(["--check"]) == 0
    paths = [path for path, _ in module.helps()]
    assert {"mycase-sync", "mycase-sync import-matters", "mycase-sync auth status", "mycase-sync sandbox serve"} <= set(paths)


def test_help_names_the_readme_and_the_config_command():
    (main_help,) = [text for path, text in script().helps() if path == "mycase-sync"]
    assert " ".join(README_PLACE.split()) in " ".join(main_help.split()) and "`mycase-sync config`" in main_help


def readme_settings() -> dict[str, tuple[str, str]]:
    """The README's "Configuration" table: name -> (default, meaning), without the Markdown."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| Variable | Default | Meaning |"):]
    table = table[:table.index("\n\n")]
    found = {}
    for row in table.splitlines()[2:]:
        names, default, meaning = (" ".join(cell.replace("`", "").split()) for cell in row.strip("|").split(" | "))
        for name in names.split(", "):
            found[name] = (default, meaning)
    return found


def test_help_lists_every_setting_as_the_readme_table_does():
    in_help = {name: (default, " ".join(meaning.split())) for name, default, meaning in SETTINGS}
    assert in_help == readme_settings(), "mycase_sync/settings_help.py and the README's settings table differ"
    source = Path(config.__file__).read_text()
    assert set(re.findall(r'"((?:MYCASE|CASESTATUS)_[A-Z_]+)"', source)) == set(in_help), \
        "a setting config.py reads is missing from mycase_sync/settings_help.py (or one listed there is not read)"
    for name, value in config.DEFAULTS.items():
        assert in_help[name][0] == value, name
