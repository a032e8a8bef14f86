import json
import subprocess
import sys

import pytest

from tinybounty.bounties import Bounty, Result, Status, all_bounties, get_bounty, needs_hardware
from tinybounty.report import exit_code, read_json, run_report, to_json, write_json


def test_registry_has_23_unique_entries():
  ids = [b.id for b in all_bounties()]
  assert ids == list(range(1, 24))
  assert all(b.title and b.capability.startswith("tinybounty") and b.hardware for b in all_bounties())


def test_get_bounty_accepts_padded_ids_and_names_bad_ones():
  assert get_bounty("01").id == get_bounty(1).id == 1
  with pytest.raises(KeyError, match="no bounty 24"): get_bounty("24")
  with pytest.raises(KeyError, match="must be a number"): get_bounty("x")


def _fake(i: int, check) -> Bounty:
  return Bounty(i, f"fake {i}", "tinybounty.fake", "nothing", check)


def _boom(full: bool) -> Result:
  raise ValueError("kaboom")


def test_check_that_raises_is_fail_and_report_goes_on():
  ok = _fake(2, lambda full: Result(Status.PASS, ran="ran ok", figure=2.5, unit="x", baseline="stock"))
  rows = run_report([_fake(1, _boom), ok], isolate=False, progress=False)
  assert [r.status for _, r in rows] == [Status.FAIL, Status.PASS]
  assert "ValueError: kaboom" in rows[0][1].detail
  assert exit_code(rows) == 1 and exit_code(rows[1:]) == 0


def test_check_returning_garbage_is_fail():
  rows = run_report([_fake(1, lambda full: "PASS")], isolate=False, progress=False)
  assert rows[0][1].status is Status.FAIL and "not Result" in rows[0][1].detail


def test_needs_hardware_reports_what_it_needs_and_the_analogue():
  analogue = Result(Status.PASS, ran="matmul on the H100", figure=117.0, unit="TFLOPS")
  r = needs_hardware("an RTX 5090 (sm_120)", analogue)
  assert r.status is Status.NEEDS_HARDWARE and "RTX 5090" in r.detail and r.figure == 117.0
  failing = Result(Status.FAIL, ran="x", detail="wrong numbers")
  assert needs_hardware("a 5090", failing).status is Status.FAIL


def test_report_json_round_trips(tmp_path):
  rows = [(b, Result(Status.PARTIAL, ran="r", figure=1.5, unit="x", baseline="b", detail="d")) for b in all_bounties()]
  path = tmp_path / "r.json"
  write_json(rows, path)
  assert [(b.key, r) for b, r in rows] == read_json(path)
  assert json.loads(path.read_text()) == json.loads(json.dumps(to_json(rows))) | {"date": json.loads(path.read_text())["date"]}


def test_isolated_check_runs_in_subprocess_and_reports_json(tmp_path):
  out = tmp_path / "r.json"
  p = subprocess.run([sys.executable, "-m", "tinybounty", "report", "--only", "22,23", "--json", str(out)],
                     capture_output=True, text=True, timeout=300)
  assert p.returncode == 0, p.stderr
  got = dict(read_json(out))
  assert set(got) == {"22", "23"} and all(isinstance(r.status, Status) for r in got.values())
