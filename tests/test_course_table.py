"""docs/course.md answers every question of the course documents: one row per id, a status each, counts that match."""
from __future__ import annotations

import re
from pathlib import Path

COURSE = Path(__file__).resolve().parents[1] / "docs" / "course.md"


def _ids(prefix: str, spec: str) -> list[str]:
    """``Q1a-d`` -> Q1a, Q1b, Q1c, Q1d; ``Sec.4b(1-3)`` -> Sec.4b(1), (2), (3); ``Q7`` -> Q7."""
    out = []
    for part in spec.split():
        if m := re.fullmatch(r"(\w+\.?\d+)([a-f])-([a-f])", part):
            out += [f"{prefix} {m[1]}{chr(c)}" for c in range(ord(m[2]), ord(m[3]) + 1)]
        elif m := re.fullmatch(r"(\w+\.?\d+[a-f])\((\d)-(\d)\)", part):
            out += [f"{prefix} {m[1]}({k})" for k in range(int(m[2]), int(m[3]) + 1)]
        else:
            out.append(f"{prefix} {part}")
    return out


# The 77 questions as issue 24 lists them, in the documents' own numbering
QUESTIONS = (_ids("000", "Q1a-d Q2a-c Q3a-b Q4a-b Q5a-c Q6a-b Q7 Q8")
             + _ids("001", "Sec.1a-b Sec.2a-b Sec.3a-d Sec.4a Sec.4b(1-3) Sec.4c(1-3) Sec.4d Sec.5")
             + _ids("002", "Q1a-c Q2a-c Q3a-d Q4a-b Q5a-f")
             + _ids("003", "Q1a-b Q2a-d Q3 Q4 Q5 Q6 Q7a-b Q8")
             + _ids("004", "Ex1a-e Ex2a-e Ex3"))
EXTRA = {"002 (course)"}  # the optimisers lab: the course's lectures, not a numbered question


def _rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in COURSE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| 0") and len(cells) == 5:
            assert cells[0] not in rows, f"two rows for {cells[0]}"
            rows[cells[0]] = cells
    return rows


def _status(cell: str) -> str:
    for kind in ("answered", "partly", "not answered"):
        if cell == "answered" if kind == "answered" else cell.startswith(kind + ": "):
            return kind
    raise AssertionError(f"status {cell!r}: expected 'answered', 'partly: what is missing' or 'not answered: why'")


def test_the_id_expansion_matches_the_issue_count():
    assert len(QUESTIONS) == len(set(QUESTIONS)) == 77
    assert _ids("001", "Sec.4b(1-3)") == ["001 Sec.4b(1)", "001 Sec.4b(2)", "001 Sec.4b(3)"]


def test_every_question_has_exactly_one_row_and_no_row_is_unknown():
    rows = _rows()
    assert sorted(set(QUESTIONS) - set(rows)) == []
    assert sorted(set(rows) - set(QUESTIONS) - EXTRA) == []


def test_every_row_has_a_command_a_status_and_an_answer_with_numbers_or_a_derivation():
    for qid, (_, question, command, status, answer) in _rows().items():
        assert question and command, qid
        if _status(status) != "not answered":
            assert re.search(r"\d| = ", answer), f"{qid}: an answer with neither a number nor an equation"


def test_the_stated_counts_are_the_tables():
    counts = {"answered": 0, "partly": 0, "not answered": 0}
    for qid, cells in _rows().items():
        if qid in QUESTIONS:
            counts[_status(cells[3])] += 1
    stated = re.search(r"\*\*(\d+) answered, (\d+) partly, (\d+) not answered\*\*", COURSE.read_text(encoding="utf-8"))
    assert stated, "docs/course.md states no counts"
    assert tuple(map(int, stated.groups())) == (counts["answered"], counts["partly"], counts["not answered"])
