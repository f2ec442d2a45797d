"""The docs keep up: every command and setting is in README.md."""

from pathlib import Path

from incbt.cli import app
from incbt.settings import SETTINGS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_command_is_documented():
    import typer.main

    group = typer.main.get_command(app)
    for name in group.commands:
        assert f"incbt {name}" in README, f"`incbt {name}` is not in README.md"


def test_every_setting_is_documented():
    for s in SETTINGS:
        assert f"`{s.name}`" in README, f"setting {s.name} is not in README.md"


def test_the_two_setup_commands_are_documented():
    assert "make demo" in README and "make test" in README
