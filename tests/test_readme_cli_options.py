"""Every ``odp-async COMMAND ... --option`` the README shows names an option COMMAND has
(new-user trial 20c: the tour was thought to name a ``--progress`` that does not exist;
the one ``--progress`` there is a tool's).  Inline code spans and code-block lines that
run ``odp-async`` are checked; tools' and pytest's options are theirs."""

from __future__ import annotations

import re
from pathlib import Path

from odp_async.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def commands_shown() -> list[tuple[str, str]]:
    """(the command, the text of the span or line that runs it)."""
    spans = re.findall(r"`([^`\n]+)`", README)
    lines = [
        line
        for block in re.findall(r"```.*?\n(.*?)```", README, re.S)
        for line in block.splitlines()
    ]
    out = []
    for text in [*spans, *lines]:
        for match in re.finditer(r"odp-async ([a-z]+)\b([^|;#]*)", text):
            out.append((match.group(1), match.group(0)))
    return out


def test_every_option_shown_for_a_command_is_one_of_its_options() -> None:
    shown = commands_shown()
    assert len(shown) > 20, shown  # the README's examples were found
    wrong = []
    for command, text in shown:
        if command not in cli.commands:
            continue  # prose ("odp-async is", "odp-async on a fresh clone")
        params = cli.commands[command].params
        known = {o for p in params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
        wrong += [
            (o, text)
            for o in re.findall(r"(?<![\w-])--?[a-z][a-z0-9-]*", text)
            if o.startswith("-") and o not in known
        ]
    assert not wrong, wrong


def test_the_commands_the_readme_gives_o_for_take_it_and_no_other_does() -> None:
    """Trial 21c f7: the README listed ``matrix -p`` among the commands and then said
    to set options "with ``-o KEY=VALUE``", which matrix has no option for."""
    match = re.search(r"with `-o KEY=VALUE` on ((?:`[a-z]+`(?:, | and )?)+)", README)
    assert match is not None, "the README no longer says which commands take -o"
    named = set(re.findall(r"`([a-z]+)`", match.group(1)))
    taking = {
        name
        for name, command in cli.commands.items()
        if any("-o" in p.opts for p in command.params)
    }
    assert named == taking, (named, taking)
    assert "`matrix` has no `-o`" in README
