"""The service's alert rules (artjax/serve/alerts.yml) under `promtool test rules`: each alert
fires on synthetic series that should page and stays quiet on healthy ones."""

import os
import shutil
import subprocess

import pytest
import yaml

from helpers import ROOT

RULES = os.path.join(ROOT, "artjax", "serve", "alerts.yml")
J = 'job="artjax"'


def _rules():
  with open(RULES) as f:
    return {r["alert"]: r for g in yaml.safe_load(f)["groups"] for r in g["rules"]}


def _requests(ok_per_min, err_per_min, endpoint="generate"):
  return [{"series": f'artjax_requests_total{{{J},instance="a",endpoint="{endpoint}",status="200"}}',
           "values": f"0+{ok_per_min}x40"},
          {"series": f'artjax_requests_total{{{J},instance="a",endpoint="{endpoint}",status="504"}}',
           "values": f"0+{err_per_min}x40"}]


def _latency(slow_share):
  """Histogram series: 100 requests a minute, `slow_share` of them above 5 s."""
  slow, fast = int(100 * slow_share), 100 - int(100 * slow_share)
  out = []
  for le, n in (("0.1", fast), ("1", fast), ("2.5", fast), ("5", fast), ("10", 100), ("+Inf", 100)):
    out.append({"series": f'artjax_request_seconds_bucket{{{J},instance="a",endpoint="generate",le="{le}"}}',
                "values": f"0+{n}x40"})
  return out


def _gauge(name, values, instance="a"):
  return {"series": f'{name}{{{J},instance="{instance}"}}', "values": values}


# alert: (firing series, quiet series, extra labels of the firing alert)
CASES = {
    "ArtjaxHighErrorRatio": (_requests(90, 10), _requests(99, 1) + _requests(50, 0, "metrics"), {}),
    "ArtjaxHighLatencyP99": (_latency(0.05), _latency(0.0), {}),
    "ArtjaxQueueBacklog": ([_gauge("artjax_queue_depth", "40x40")],
                           [_gauge("artjax_queue_depth", "40x3 2x37")], {"instance": "a"}),
    "ArtjaxNoReadyReplica": ([_gauge("artjax_ready", "0x40", "a"), _gauge("artjax_ready", "0x40", "b")],
                             [_gauge("artjax_ready", "0x40", "a"), _gauge("artjax_ready", "1x40", "b")], {}),
    "ArtjaxCompilesAfterStartup": ([_gauge("artjax_compiles_since_ready", "0x10 1x30")],
                                   [_gauge("artjax_compiles_since_ready", "0x40")], {"instance": "a"}),
}


def _test(name, series, alerts):
  return {"name": name, "interval": "1m", "input_series": series,
          "alert_rule_test": [{"eval_time": "30m", "alertname": name.split(":")[0], "exp_alerts": alerts}]}


@pytest.mark.slow
def test_every_alert_fires_and_stays_quiet(tmp_path):
  promtool = shutil.which("promtool")
  if promtool is None:
    pytest.skip("no promtool (make test-slow installs Debian's prometheus as root)")
  rules = _rules()
  assert set(rules) == set(CASES)
  tests = []
  for name, (firing, quiet, extra) in CASES.items():
    r = rules[name]
    exp = {"exp_labels": {**r["labels"], "job": "artjax", **extra}, "exp_annotations": r["annotations"]}
    tests += [_test(f"{name}:fires", firing, [exp]), _test(f"{name}:quiet", quiet, [])]
  # all targets down: no artjax_ready at all, only `up` == 0
  down = [{"series": f'up{{{J},instance="{i}"}}', "values": "0x40"} for i in "ab"]
  r = rules["ArtjaxNoReadyReplica"]
  tests.append(_test("ArtjaxNoReadyReplica:down", down, [{"exp_labels": {**r["labels"], "job": "artjax"},
                                                          "exp_annotations": r["annotations"]}]))
  spec = tmp_path / "alerts_test.yml"
  spec.write_text(yaml.safe_dump({"rule_files": [RULES], "evaluation_interval": "1m", "tests": tests}))
  out = subprocess.run([promtool, "test", "rules", str(spec)], capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stdout + out.stderr
  assert "SUCCESS" in out.stdout + out.stderr

  # the check can fail: a broken threshold is caught
  broken = tmp_path / "broken.yml"
  broken.write_text(open(RULES).read().replace("> 0.05", "> 0.5"))
  spec.write_text(yaml.safe_dump({"rule_files": [str(broken)], "evaluation_interval": "1m", "tests": tests}))
  out = subprocess.run([promtool, "test", "rules", str(spec)], capture_output=True, text=True, timeout=120)
  assert out.returncode != 0 and "ArtjaxHighErrorRatio:fires" in out.stdout + out.stderr
