#!/usr/bin/env python3
"""Runs the HighlyAvailableApp health check of argocd-cm.yaml on every case of
health_test.yaml and compares status and message exactly.

The Lua runs as Argo CD runs it: the object in the global `obj`, the script's return value
the health. Argo CD embeds gopher-lua, a Lua 5.1; the check runs on Lua 5.1 and on 5.4 (lupa
ships both), so it uses nothing either lacks. Numbers are passed as floats, as Argo CD's JSON
decoding makes them.

    config/argocd/health_test.py      (scripts/install-tools provides lupa and PyYAML; the
                                       script re-runs itself with that virtualenv's python)
"""
import os
import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
KEY = "resource.customizations.health.halo.dev_HighlyAvailableApp"

try:
    import lupa.lua51
    import lupa.lua54
    import yaml
except ImportError:
    if os.environ.get("HALO_HEALTH_TEST_REEXEC"):
        raise
    root = HERE.parent.parent
    subprocess.run([root / "scripts/install-tools"], check=True)
    venv = subprocess.run([root / "scripts/install-tools", "--print"], check=True,
                          capture_output=True, text=True).stdout.strip()
    os.environ["HALO_HEALTH_TEST_REEXEC"] = "1"
    os.execv(f"{venv}/bin/python", [f"{venv}/bin/python", __file__, *sys.argv[1:]])


# Every condition reason halo can set is classified, so a new one cannot silently show as
# Degraded: Progressing ones are in the Lua's `progressing` table, the others are listed here.
DEGRADED = {
    "ReplicasUnavailable", "InsufficientZones", "ZoneImbalanced", "NotReady", "Unavailable",
    "SingleZone", "HealthCheckUnhealthy",
    # a store the status recorded is gone or replaced: a person decides (halo.dev/accept-store)
    "Missing", "Replaced",
    # reconcile errors (Error::metric_label)
    "InvalidSpec", "KubernetesAPIError", "ChildNotOwned", "MissingMetadata", "SerializationError",
    "AWSAPIError", "AWSResourceNotOwned", "DeletionBlocked",
}
# Reasons of True conditions only (never on a Ready=False).
NOT_FAILING = {
    "Ready", "Available", "LoadBalancerProvisioned", "ZoneLossTolerated", "Retained",
    "RecordsSynced", "HealthCheckHealthy",
    # AlarmsOK's reasons: reported, never part of Ready, so never Ready's reason.
    "Disabled", "AlarmFiring", "NoAlarmFiring",
}


def operator_reasons(root):
    """Condition reasons in the operator's code: consts in `pub mod reasons` blocks, consts
    documented as a reason, and the error kinds of `fn metric_label` (Ready's reason on a
    failed reconcile)."""
    reasons = {}
    const = re.compile(r'pub const [A-Z0-9_]+: &str = "([A-Za-z0-9]+)";')
    for path in sorted((root / "operator/src").rglob("*.rs")):
        lines = path.read_text().splitlines()
        depth = None
        for i, line in enumerate(lines):
            where = f"{path.relative_to(root)}:{i + 1}"
            if re.match(r"\s*pub mod reasons \{", line):
                depth = 0
            if depth is not None:
                depth += line.count("{") - line.count("}")
                m = const.search(line)
                if m:
                    reasons[m.group(1)] = where
                if depth <= 0 and "}" in line:
                    depth = None
                continue
            m = const.search(line)
            if m and i > 0 and lines[i - 1].strip().startswith("/// Reason"):
                reasons[m.group(1)] = where
        text = "\n".join(lines)
        for body in re.findall(r"fn metric_label\(&self\) -> &'static str \{(.*?)\n    \}", text, re.S):
            for m in re.finditer(r'=> "([A-Za-z0-9]+)"', body):
                reasons[m.group(1)] = f"{path.relative_to(root)} (metric_label)"
    return reasons


def progressing_reasons(script):
    table = re.search(r"local progressing = \{(.*?)\}", script, re.S).group(1)
    return set(re.findall(r"([A-Za-z0-9]+) = true", table))


def floats(value):
    """JSON numbers as Argo CD hands them to Lua: float64."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [floats(v) for v in value]
    return value


def to_lua(lua, value):
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([to_lua(lua, v) for v in value])
    return value


def run(module, script, obj):
    lua = module.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = to_lua(lua, floats(obj))
    hs = lua.execute(script)
    return {"status": hs["status"], "message": hs["message"]}


def main():
    cm = yaml.safe_load((HERE / "argocd-cm.yaml").read_text())
    script = cm["data"][KEY]
    cases = yaml.safe_load((HERE / "health_test.yaml").read_text())["tests"]
    listed = {c["inputPath"] for c in cases}
    unlisted = sorted(f"testdata/{p.name}" for p in (HERE / "testdata").glob("*.yaml")
                      if f"testdata/{p.name}" not in listed)
    passed, failed = 0, 0
    for name, module in (("Lua 5.1", lupa.lua51), ("Lua 5.4", lupa.lua54)):
        for case in cases:
            obj = yaml.safe_load((HERE / case["inputPath"]).read_text())
            want = case["healthStatus"]
            try:
                got = run(module, script, obj)
            except Exception as e:  # a Lua error is a failed case, reported like the others
                got = {"error": str(e)}
            if got == want:
                passed += 1
            else:
                failed += 1
                print(f"FAIL {name} {case['inputPath']}:\n  want {want}\n  got  {got}")
    progressing = progressing_reasons(script)
    for reason, where in sorted(operator_reasons(HERE.parent.parent).items()):
        known = progressing | DEGRADED | NOT_FAILING
        if reason in known:
            passed += 1
        else:
            failed += 1
            print(f"FAIL reason {reason} ({where}) is not classified: add it to the Lua's "
                  "`progressing` table or to DEGRADED / NOT_FAILING in health_test.py")
    if unlisted:
        failed += 1
        print(f"FAIL testdata files without a case in health_test.yaml: {unlisted}")
    print(f"argocd health check: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
