from tinybounty.records import format_row, latest, read_records

DOC = """# Benchmarks

| date | bench | machine | command | figure | baseline |
|---|---|---|---|---|---|
| 2026-11-01 | engine | cpu | `python bench/x.py` | 1.5x | stock |
| 2026-11-03 | engine | cpu | `python bench/x.py` | 2.1x | stock |
| 2026-11-02 | other | gpu | `y` | 7 | z |

Not a table | row
"""


def test_latest_record_wins_by_date(tmp_path):
  p = tmp_path / "b.md"
  p.write_text(DOC)
  assert len(read_records(p)) == 3
  assert latest("engine", p).figure == "2.1x"
  assert latest("engine", p).command == "python bench/x.py"
  assert latest("missing", p) is None


def test_format_row_parses_back(tmp_path):
  p = tmp_path / "b.md"
  p.write_text(DOC + "\n| date | bench | machine | command | figure | baseline |\n|-|-|-|-|-|-|\n"
               + format_row("engine", "m", "cmd", "3x", "stock", date="2026-11-04") + "\n")
  assert latest("engine", p).figure == "3x"
