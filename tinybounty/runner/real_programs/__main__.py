"""python -m tinybounty.runner.real_programs NAME...: check each program on this process's DEV, one JSON line each."""
import json
import sys
import traceback

from tinybounty.runner.real_programs import check, programs

if __name__ == "__main__":
  progs = programs()
  for name in sys.argv[1:]:
    try: line = check(progs[name]).as_dict()
    except Exception as e:  # a crash is a result: name the op that failed
      line = {"program": name, "ok": False, "error": f"{type(e).__name__}: {e}"[:2000], "trace": traceback.format_exc()[-3000:]}
    print(json.dumps(line), flush=True)
