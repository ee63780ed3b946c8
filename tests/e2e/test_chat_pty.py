"""`noosphere chat` driven through a pseudo-terminal, as a person would use it."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import Cli

pytestmark = pytest.mark.e2e


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()

        def controlling_terminal() -> None:
            # As a terminal emulator does: a new session whose controlling tty is the pty,
            # so Ctrl-C typed into it is a SIGINT for the program.
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env,
            preexec_fn=controlling_terminal,
        )  # fmt: skip
        os.close(slave)
        self.seen = ""
        self.cursor = 0  # expect() looks only at output after its previous match

    def expect(self, text: str, timeout: float = 120) -> str:
        """Wait for `text` after the previous match; return the output up to it."""
        deadline = time.monotonic() + timeout
        while text not in self.seen[self.cursor :]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"never saw {text!r}; screen:\n{self.seen[-3000:]}")
            ready, _, _ = select.select([self.master], [], [], min(remaining, 1.0))
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"exited before {text!r}; screen:\n{self.seen[-3000:]}")
                self.seen += chunk.decode("utf-8", "replace")
        start = self.cursor
        self.cursor = self.seen.index(text, start) + len(text)
        return self.seen[start : self.cursor]

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=60)
        finally:
            os.close(self.master)


def test_chat_session(cli: Cli, tmp_path: Path) -> None:
    assert cli("init").returncode == 0
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bees.md").write_text("Honey bees live in hives and make honey from nectar.")
    assert cli("ingest", str(docs)).returncode == 0
    term = Terminal([str(Path(sys.executable).with_name("noosphere")), "chat"], cli.env)
    try:
        term.expect("Type a question", timeout=180)
        term.expect("you> ")
        term.send("What is a bee?\n")
        term.expect("noosphere> ")
        term.expect("you> ")
        term.send("123456789 * 987654321\n")
        answer = term.expect("you> ")
        assert "121932631112635269" in answer
        term.send("/search where does honey come from\n")
        term.expect("bees.md#0")
        term.send("/tools\n")
        term.expect("chain_stake")
        term.send("Write a very long story about a dragon and a lighthouse.\n")
        term.expect("noosphere> ")
        time.sleep(1.0)
        term.send("\x03")  # Ctrl-C: the answer stops, the REPL stays
        term.expect("[cancelled]")
        term.expect("you> ")
        term.send("/quit\n")
        term.expect("bye")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait()
    # the conversation was saved as it went, and resumes
    listed = cli("chat", "--list")
    assert listed.returncode == 0, listed.stderr
    conversation_id, count, *_ = listed.stdout.split()
    assert "What is a bee?" in listed.stdout
    assert int(count) >= 4  # two turns: user + assistant (+ the calculator's tool message)
    again = Terminal(
        [str(Path(sys.executable).with_name("noosphere")), "chat", "--resume", conversation_id],
        cli.env,
    )
    try:
        again.expect("you> ", timeout=180)
        again.send("/quit\n")
        again.expect("bye")
        assert again.close() == 0
    finally:
        if again.proc.poll() is None:
            again.proc.kill()
            again.proc.wait()
    bad = cli("chat", "--resume", "999")
    assert bad.returncode == 2
    assert "no conversation 999" in bad.stderr


BIG = "18446744073709551615"  # 2^64 - 1
FACT = "The Zorblax festival is held every March in the mountain town of Velmora."


def answers_between(screen: str, start: str, end: str) -> list[str]:
    """Each piece of `screen` between a `start` and the next `end`."""
    return [part.split(end)[0] for part in screen.split(start)[1:]]


def test_ask_and_chat_answer_exactly_and_from_a_freshly_ingested_file(
    cli: Cli, tmp_path: Path
) -> None:
    assert cli("init").returncode == 0
    notes = tmp_path / "zorblax.md"
    notes.write_text(f"# Festivals\n\n{FACT}\nVisitors bring copper lanterns.\n")
    assert cli("ingest", str(notes)).returncode == 0
    exe = str(Path(sys.executable).with_name("noosphere"))

    term = Terminal([exe, "ask", "What is 2^64 minus 1?"], cli.env)
    try:
        assert BIG in term.expect(BIG)
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    term = Terminal([exe, "ask", "When is the Zorblax festival held?"], cli.env)
    try:
        term.expect("Sources:")
        term.expect("zorblax.md")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    body = term.seen.split("Sources:")[0]
    assert "March" in body  # the fact itself, not only the file it came from
    assert str(notes.resolve()) in term.seen

    chat = Terminal([exe, "chat"], cli.env)
    try:
        chat.expect("Type a question", timeout=180)
        chat.expect("you> ")
        chat.send("What is 2^64 minus 1?\n")
        assert BIG in chat.expect("you> ")
        chat.send("When is the Zorblax festival held?\n")
        grounded = chat.expect("you> ")
        assert "March" in grounded.split("Sources:")[0]
        assert "zorblax.md" in grounded
        chat.send("Say hello.\n")
        chat.expect("you> ")
        chat.send("/quit\n")
        chat.expect("bye")
        assert chat.close() == 0
    finally:
        if chat.proc.poll() is None:
            chat.proc.kill()
            chat.proc.wait()
    answers = answers_between(chat.seen, "noosphere> ", "you> ")
    assert len(answers) == 3
    for answer in answers:  # never an empty answer (tool lines alone do not count)
        text = "\n".join(line for line in answer.splitlines() if not line.strip().startswith("["))
        assert text.strip(), chat.seen[-2000:]
