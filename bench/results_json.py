#!/usr/bin/env python3
"""Writes bench/run.sh's results as JSON: `results_json.py RESULTS.tsv OUT.json`.

run.sh appends tab-separated lines to RESULTS.tsv as it goes (standard library only here):

- `meta KEY VALUE`: the machine, the revision, the binaries, start and end times;
- `knob KEY VALUE`: the BENCH_* settings in force;
- `extra KEY VALUE`: figures outside the table (peak RSS, rate-limit memory, warm-up, events);
- `run ID ROUND ROLE ON NAME RPS P50_US P99_US REQUESTS NON2XX SOCKET_ERRORS CONNECTIONS
  SERVER_US_PER_REQUEST OTHER_CPU_PERCENT`: one wrk run; ROLE is scenario, ceiling or liveness, ON
  the server it drove (keyward, bare, throttlecrab);
- `scenario ID NAME RPS P50_US P99_US VS_LIVENESS VS_CEILING CEILING CEILING_RPS CEILING_P50_US
  CEILING_P99_US P99_VS_CEILING KIND TARGET TARGET_TEXT MET ROUNDS REQUESTS NON2XX SOCKET_ERRORS
  NOTE`: one row of the summary table (figures are medians of the rounds).

Each scenario of the JSON carries its runs grouped by round ("rounds_detail", with the per-round
ratios) and "met_ok" (true, false, or null when the row has no target). "-" and empty fields
become null; numbers become numbers.
"""

import json
import sys

RUN_FIELDS = ["id", "round", "role", "on", "name", "rps", "p50_us", "p99_us", "requests", "non2xx",
              "socket_errors", "connections", "server_us_per_request", "other_cpu_percent"]
SCENARIO_FIELDS = ["id", "name", "rps", "p50_us", "p99_us", "vs_liveness", "vs_ceiling", "ceiling",
                   "ceiling_rps", "ceiling_p50_us", "ceiling_p99_us", "p99_vs_ceiling", "kind",
                   "target", "target_text", "met", "rounds", "requests", "non2xx", "socket_errors",
                   "note"]
TEXT = {"id", "role", "on", "name", "ceiling", "kind", "target_text", "met", "note"}


def value(text):
    if text in ("", "-"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def record(fields, values):
    values = values + [""] * (len(fields) - len(values))
    return {f: (v if f in TEXT and v != "" else value(v)) for f, v in zip(fields, values)}


def ratio(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0:
        return round(a / b, 4)
    return None


def main(tsv_path, out_path):
    meta, knobs, extra, runs, scenarios = {}, {}, {}, [], []
    with open(tsv_path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            kind, rest = parts[0], parts[1:]
            if kind in ("meta", "knob", "extra") and len(rest) >= 2:
                {"meta": meta, "knob": knobs, "extra": extra}[kind][rest[0]] = value(rest[1]) \
                    if kind != "meta" else rest[1]
            elif kind == "run":
                runs.append(record(RUN_FIELDS, rest))
            elif kind == "scenario":
                scenarios.append(record(SCENARIO_FIELDS, rest))

    by_id = {}
    for run in runs:
        by_id.setdefault(run["id"], []).append(run)
    used = set()
    for s in scenarios:
        # b-p99 is read from b's runs; e-rss has none.
        source = {"b-p99": "b"}.get(s["id"], s["id"])
        own = by_id.get(source, []) if s["id"] != "e-rss" else []
        used.add(source)
        rounds = {}
        for run in own:
            rounds.setdefault(run["round"], {"round": run["round"]})[run["role"]] = {
                k: run[k] for k in RUN_FIELDS if k not in ("id", "round", "role")}
        s["rounds_detail"] = []
        for n in sorted(rounds):
            r = rounds[n]
            main_run, ceiling, live = r.get("scenario"), r.get("ceiling"), r.get("liveness")
            if main_run:
                if ceiling:
                    r["vs_ceiling"] = ratio(main_run["rps"], ceiling["rps"])
                    r["p99_vs_ceiling"] = ratio(main_run["p99_us"], ceiling["p99_us"])
                if live:
                    r["vs_liveness"] = ratio(main_run["rps"], live["rps"])
            s["rounds_detail"].append(r)
        s["ceiling"] = None if s["ceiling"] in (None, "-") else {
            "name": s["ceiling"], "rps": s.pop("ceiling_rps"), "p50_us": s.pop("ceiling_p50_us"),
            "p99_us": s.pop("ceiling_p99_us")}
        for k in ("ceiling_rps", "ceiling_p50_us", "ceiling_p99_us"):
            s.pop(k, None)
        s["target"] = {"kind": s.pop("kind"), "value": s.pop("target"), "text": s.pop("target_text")}
        met = s["met"] or ""
        s["met_ok"] = True if met.startswith("yes") else False if met.startswith(("NO", "FAILED")) else None

    out = {
        "revision": meta.pop("revision", None),
        "started": meta.pop("started", None),
        "finished": meta.pop("finished", None),
        "machine": {k: value(meta.pop(k)) if k in ("cores", "memory_kib") else meta.pop(k)
                    for k in ("cores", "cpu_model", "kernel", "memory_kib", "tmp_fs", "load_average")
                    if k in meta},
        "tools": meta,
        "knobs": knobs,
        "scenarios": scenarios,
        "extra": extra,
    }
    other = [r for r in runs if r["id"] not in used]
    if other:
        out["other_runs"] = other
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: results_json.py RESULTS.tsv OUT.json")
    main(sys.argv[1], sys.argv[2])
