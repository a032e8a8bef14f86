"""The status rules of checks 01, 04-14, 16-19, 22 and 23 on fabricated inputs and records (no model runs): wrong is
FAIL, correct but below target (or target unshown where the hardware is here) is PARTIAL, missing hardware is
NEEDS-HARDWARE, and a figure recorded on another machine is shown, labelled, and never counted."""
import math

from tinybounty.bounties import b01_torch_ops as b01
from tinybounty.bounties import b04_gpt_fast as b04
from tinybounty.bounties import b05_multigpu as b05
from tinybounty.bounties import b09_fp8_tc as b09
from tinybounty.bounties import b10_bert_mlperf as b10
from tinybounty.bounties import b11_z3_validate as b11
from tinybounty.bounties import b12_olmoe as b12
from tinybounty.bounties import b13_retinanet as b13
from tinybounty.bounties import b14_webgpu_export as b14
from tinybounty.bounties import b16_llama4_scout as b16
from tinybounty.bounties import b17_multimachine as b17
from tinybounty.bounties import b18_rdna4_tc as b18
from tinybounty.bounties import b19_cpu_graph as b19
from tinybounty.bounties import b22_failure53 as b22
from tinybounty.bounties import b23_metadata as b23
from tinybounty.bounties import engine_measure
from tinybounty.bounties.base import Result, Status, same_machine
from tinybounty.records import Record

HERE, ELSEWHERE = "AMD EPYC x2", "Intel(R) Xeon(R) Processor x16, NVIDIA H200 (sm_90)"
GPU = (("NVIDIA H200", "9.0"),)
OK, WRONG = Result(Status.PASS, ran="analogue", figure=0.5), Result(Status.FAIL, ran="analogue", detail="wrong")


def _rec(bench: str, figure: str, machine: str = ELSEWHERE) -> Record:
  return Record("2026-12-01", bench, machine, "python bench/x.py", figure, "baseline")


def test_same_machine_ignores_load_notes_only():
  assert same_machine("AMD EPYC x2 (shared, load 13-28)", HERE)
  assert same_machine("AMD EPYC x2 (load average 26.2 on 2 cores, shared with other jobs)", HERE)
  assert same_machine(ELSEWHERE, ELSEWHERE)
  assert not same_machine("Intel(R) Xeon(R) Processor x2", HERE)
  assert not same_machine("AMD EPYC x16", HERE)


def test_01_status_rule():
  assert b01.verdict([], None).status is Status.PASS
  assert b01.verdict(["topk"], None).status is Status.FAIL
  assert b01.verdict(["crashed: RuntimeError: x"], None).status is Status.FAIL
  quoted = b01.verdict([], _rec("torch_opinfo", "float32 fwd 601/677"))
  assert quoted.status is Status.PASS and "2026-12-01" in quoted.detail and ELSEWHERE in quoted.detail


def test_04_05_17_analogue_only_checks():
  assert b04.verdict(WRONG, ()).status is Status.FAIL
  assert b04.verdict(OK, ()).status is Status.NEEDS_HARDWARE
  assert b04.verdict(OK, GPU).status is Status.PARTIAL          # a GPU is here, but the 7B comparison is not run: target unshown
  assert b05.verdict(WRONG, GPU * 2).status is Status.FAIL
  assert b05.verdict(OK, GPU).status is Status.NEEDS_HARDWARE   # one GPU is not multi-GPU
  assert b05.verdict(OK, GPU * 2).status is Status.PARTIAL
  assert b17.verdict(WRONG).status is Status.FAIL
  assert b17.verdict(OK).status is Status.NEEDS_HARDWARE


def _engine(ratio: float, identical: bool = True) -> dict:
  return {"rewrite_ratio": ratio, "total_ratio": ratio, "identical": identical}


def test_06_08_status_rule():
  rule = engine_measure.verdict
  tiny = {"GPT-2 tiny": _engine(5.0)}
  here, there = _rec("engine_gpt2", "3.13x rewrite", HERE + " (shared, load 13-28)"), _rec("engine_resnet50", "9.0x rewrite")
  assert rule(2.0, "ran", {"GPT-2 tiny": _engine(5.0, False)}, False, [here], HERE).status is Status.FAIL
  assert rule(2.0, "ran", tiny, False, [here], HERE).status is Status.PASS
  r = rule(4.0, "ran", tiny, False, [here], HERE)
  assert r.status is Status.PARTIAL and math.isclose(r.figure, 3.13)          # correct, 3.13x against 4x
  r = rule(2.0, "ran", tiny, False, [there], HERE)                              # at target, but the full size only elsewhere
  assert r.status is Status.PARTIAL and r.figure == 5.0 and ELSEWHERE in r.detail
  assert rule(8.0, "ran", tiny, False, [there], HERE).status is Status.PARTIAL  # a fast record elsewhere never counts
  full = {"ResNet-50 bs64": _engine(2.5), "GPT-2 small": _engine(3.0)}
  assert rule(2.0, "ran", full, True, [], HERE).status is Status.PASS
  assert rule(4.0, "ran", full, True, [], HERE).figure == 2.5
  assert rule(2.0, "ran", tiny, False, [_rec("engine_gpt2", "fast", HERE)], HERE).status is Status.FAIL


def test_09_status_rule():
  rec_here, rec_there = _rec("matmul_fp8_8192", "0.498x torch._scaled_mm", ELSEWHERE), _rec("matmul_fp8_8192", "0.498x torch._scaled_mm")
  assert b09.verdict("ran", rec_here, ELSEWHERE, error=1e-4, bound=2e-4).status is Status.PASS
  assert b09.verdict("ran", rec_here, ELSEWHERE, error=3e-4, bound=2e-4).status is Status.FAIL
  assert b09.verdict("ran", rec_here, ELSEWHERE, error=float("nan"), bound=2e-4).status is Status.FAIL
  assert b09.verdict("ran", _rec("matmul_fp8_8192", "0.1x", ELSEWHERE), ELSEWHERE, 1e-4, 2e-4).status is Status.PARTIAL
  assert b09.verdict("ran", rec_there, "AMD EPYC x16, NVIDIA RTX 4090 (sm_89)", 1e-4, 2e-4).status is Status.PARTIAL
  assert b09.verdict("ran", None, ELSEWHERE, 1e-4, 2e-4).status is Status.PARTIAL
  no_gpu = b09.verdict("compiled for sm_89", rec_there, HERE)
  assert no_gpu.status is Status.NEEDS_HARDWARE and "2026-12-01" in no_gpu.detail and no_gpu.figure is None


def test_10_11_status_rules():
  assert b10.verdict("ran", 1e-6, 1e-6, True, []).status is Status.NEEDS_HARDWARE
  assert b10.verdict("ran", 1e-6, 2e-4, True, []).status is Status.FAIL
  assert b10.verdict("ran", float("nan"), 1e-6, True, []).status is Status.FAIL
  assert b10.verdict("ran", 1e-6, 1e-6, False, []).status is Status.FAIL
  assert b10.verdict("ran", 1e-6, 1e-6, True, ["gfx942"]).status is Status.FAIL
  assert b11.verdict("ran", 12, [], [], 30, 100).status is Status.PASS
  assert b11.verdict("ran", 12, ["oob/CPU"], [], 30, 100).status is Status.FAIL
  assert b11.verdict("ran", 12, [], ["gpt2_decode"], 30, 100).status is Status.FAIL


def test_12_16_status_rule():
  for mod, bench in ((b12, "llm_decode_olmoe_mid"), (b16, "llm_decode_llama4_mid")):
    rec = _rec(bench, "0.69 tok/s median, 16% of the read-bandwidth limit")
    assert mod.verdict("ran", False, "logits off", HERE, rec).status is Status.FAIL
    assert mod.verdict("ran", True, "match", HERE, None).status is Status.NEEDS_HARDWARE    # was PARTIAL without a record
    quoted = mod.verdict("ran", True, "match", HERE, rec)
    assert quoted.status is Status.NEEDS_HARDWARE and math.isclose(quoted.figure, 0.16) and "another machine" in quoted.unit
    assert mod.verdict("ran", True, "match", HERE, measured=(0.6, "fig")).figure == 0.6
    assert mod.verdict("ran", True, "match", HERE, _rec(bench, "fast")).status is Status.FAIL


def test_13_14_18_status_rules():
  ok = {"cls_loss": 1e-7, "box_loss": 0.0, "grad": 3e-6}
  assert b13.verdict("ran", ok, [1.2, 1.1, 1.0], 0.01).status is Status.NEEDS_HARDWARE
  assert b13.verdict("ran", ok | {"grad": 2e-4}, [1.2, 1.1, 1.0], 0.01).status is Status.FAIL
  assert b13.verdict("ran", ok | {"cls_loss": 2e-4}, [1.2, 1.1, 1.0], 0.01).status is Status.FAIL
  assert b13.verdict("ran", ok, [1.2, float("nan"), 1.0], 0.01).status is Status.FAIL
  assert b13.verdict("ran", ok, [1.2, 1.1, 1.0], 1.5).status is Status.FAIL
  assert b14.verdict(1e-6, ["mnist"], "Chromium", True, 1.0).status is Status.PASS
  assert b14.verdict(1e-6, ["mnist"], "Dawn", False, 1.0).status is Status.NEEDS_HARDWARE
  assert b14.verdict(0.01, ["mnist"], "Dawn", False, 1.0).status is Status.FAIL
  assert b14.verdict(float("nan"), ["mnist"], "Chromium", True, 1.0).status is Status.FAIL
  assert b14.verdict(None, ["mnist"], "no adapter", True, 1.0).status is Status.FAIL
  forms = list(b18.FORMS.values())
  assert b18.verdict(forms, [], []).status is Status.NEEDS_HARDWARE
  assert b18.verdict(forms[:3], forms[3:], []).status is Status.FAIL
  assert b18.verdict(forms, [], ["layout"]).status is Status.FAIL


def test_19_status_rule():
  here, there = _rec("cpugraph_gpt2_narrow_decode_clang", "3.62x median", HERE), _rec("cpugraph_gpt2_narrow_decode_clang", "3.62x median")
  assert b19.verdict("DEV=CPU: differs", 0.0, HERE).status is Status.FAIL
  assert b19.verdict(None, 2.0, HERE, rec=here).status is Status.PASS
  r = b19.verdict(None, 1.2, HERE, rec=here)
  assert r.status is Status.PARTIAL and r.figure == 1.2                 # correct, MLP 1.2x against 1.5x
  r = b19.verdict(None, 2.0, HERE, rec=there)                           # decode only shown elsewhere: not counted
  assert r.status is Status.PARTIAL and r.figure == 2.0 and ELSEWHERE in r.detail
  assert b19.verdict(None, 2.0, HERE).status is Status.PARTIAL
  assert b19.verdict(None, 2.0, HERE, decode=1.6).status is Status.PASS
  assert b19.verdict(None, 2.0, HERE, decode=1.1).figure == 1.1
  assert b19.verdict(None, 2.0, HERE, rec=_rec("cpugraph_gpt2_narrow_decode_clang", "fast", HERE)).status is Status.FAIL


def test_22_23_status_rules():
  gpu_rec = _rec("failure53_cuda", "0 wrong outputs")
  assert b22.verdict(True, 0, True).status is Status.PASS
  assert b22.verdict(True, 3, True).status is Status.FAIL
  assert b22.verdict(False, 0, True).status is Status.FAIL
  r = b22.verdict(True, 0, False, 4096, True, gpu_rec)
  assert r.status is Status.NEEDS_HARDWARE and "2026-12-01" in r.detail and ELSEWHERE in r.detail
  assert b22.verdict(True, 0, False, 0, False, None).status is Status.NEEDS_HARDWARE   # no NVRTC: render and CPU run only
  assert b22.verdict(True, 0, False, 0, True, None).status is Status.FAIL              # NVRTC here but nothing compiled
  assert b22.verdict(True, 1, False, 4096, True, None).status is Status.FAIL
  one = [[("conv2d", False)], [("conv2d", True)], [("relu", False)]]
  assert b23.verdict("net", ("CPU:0", "CPU:1"), one, one).status is Status.PASS
  assert b23.verdict("net", ("CPU:0", "CPU:1"), one, [*one, []]).status is Status.FAIL              # an untagged kernel
  assert b23.verdict("net", ("CPU:0", "CPU:1"), one, [[("conv2d", False)], [("sum", False)]]).status is Status.FAIL
  folded = b23.verdict("net", ("CPU:0", "CPU:1"), one, [[("conv2d", False)], [("conv2d", False)], [("relu", False)]])
  assert folded.status is Status.PASS and "one side only" in folded.detail


def test_a_quoted_gpu_record_informs_but_never_changes_the_status(tmp_path):
  from tinybounty.bounties.base import with_records
  from tinybounty.records import format_row
  docs = tmp_path / "benchmarks.md"
  docs.write_text("| date | bench | machine | command | figure | baseline |\n|---|---|---|---|---|---|\n" +
                  format_row("gpu_bench", "NVIDIA H200 (sm_90)", "cmd", "11.7 tok/s", "transformers", date="2026-12-05") + "\n")
  for status in (Status.FAIL, Status.NEEDS_HARDWARE, Status.PARTIAL):
    got = with_records(Result(status, ran="analogue", detail="seen"), ("gpu_bench", "absent_bench"), docs)
    assert got.status is status and got.detail == "seen; record gpu_bench 2026-12-05 on NVIDIA H200 (sm_90): 11.7 tok/s"
  assert with_records(Result(Status.PASS, ran="a"), ("absent_bench",), docs) == Result(Status.PASS, ran="a")
