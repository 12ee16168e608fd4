"""The benchmarks' quick modes run (smoke tests: they must produce their tables; no timing is asserted), and what
they share (benchmarks/_common.py, the search quality report) works on its own."""

import ast
import csv
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "benchmarks"


@pytest.mark.parametrize("script, outputs", [
    ("latency.py", ["latency_quick.md", "latency_quick.csv", "latency_quick.png"]),
    ("search_cost.py", ["search_cost_quick.md", "search_cost_quick.csv"]),
])  # fmt: skip
@pytest.mark.benchmark
def test_quick_mode_writes_its_tables(script, outputs, tmp_path):
    subprocess.run([sys.executable, str(BENCH / script), "--quick", "--out", str(tmp_path)], check=True, timeout=600)
    for name in outputs:
        assert (tmp_path / name).stat().st_size > 0
    table = (tmp_path / outputs[0]).read_text()
    assert table.count("|") > 20 and "Produced by" in table
    if script == "latency.py":  # the forms side by side and the time per kind of conv
        forms = (tmp_path / "latency_forms_quick.md").read_text()
        assert "Deploy vs plain eval mode" in forms and "Fused vs 3-path" in forms
        assert forms.count("## Where the time goes") == 2 and "depthwise 3x3" in forms
    else:
        assert "channels_last" in table and "fused / paths" in table


@pytest.mark.benchmark
def test_latency_re_times_named_models_and_keeps_the_other_rows(tmp_path):
    """``--models``: the named models' rows are replaced, the others stay, the timm backbone is timed beside them."""
    header = "model,form,input,batch,latency_ms,gmacs_per_image,achieved_gmac_s,peak_fraction"
    (tmp_path / "latency_quick.csv").write_text(
        f"{header}\nhrnas_other,eval,224x224,1,5.0,0.1,20.0,0.2\nhrnas_supernet_tiny_seg,eval,224x224,1,999.0,9.9,0.01,0.0\n"
    )
    script = [sys.executable, str(BENCH / "latency.py"), "--quick", "--out", str(tmp_path)]
    subprocess.run([*script, "--models", "hrnas_supernet_tiny_seg"], check=True, timeout=600)
    with open(tmp_path / "latency_quick.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["model"] == "hrnas_other" and rows[0]["latency_ms"] == "5.0" and rows[0]["measured"] == ""
    tiny = [r for r in rows if r["model"] == "hrnas_supernet_tiny_seg"]
    assert sorted(r["form"] for r in tiny) == ["deploy", "eval"] and all(r["latency_ms"] != "999.0" for r in tiny)
    assert all(r["measured"] and r["arch_digest"] for r in tiny)
    assert [r["form"] for r in rows if r["model"].startswith("timm hrnet_w18_small")] == ["eval"]
    table = (tmp_path / "latency_quick.md").read_text()
    assert "come from 2 runs" in table and "--models hrnas_supernet_tiny_seg" in table
    assert not (tmp_path / "latency_forms_quick.md").exists()  # only the named models were timed
    failed = subprocess.run([*script, "--models", "hrnas_nope"], capture_output=True, text=True, timeout=600)
    assert failed.returncode != 0 and "unknown hrnas models ['hrnas_nope']" in failed.stderr


@pytest.mark.benchmark
def test_latency_scatter_quick_mode(tmp_path):
    script = BENCH / "latency_scatter.py"
    subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)], check=True, timeout=600)
    with open(tmp_path / "latency_scatter_quick.csv") as f:
        rows = list(csv.DictReader(f))
    # two networks, each read in both forms; every spread is a real number
    assert [(r["form"].split()[0], r["network"]) for r in rows] == [
        ("short", "0"), ("short", "1"), ("long", "0"), ("long", "1")
    ]  # fmt: skip
    assert all(float(r[k]) >= 0 for r in rows for k in r if k.endswith("_pct"))
    table = (tmp_path / "latency_scatter_quick.md").read_text()
    assert "Produced by" in table and "against the table's reference" in table


def test_search_speedup_quarters():
    sys.path.insert(0, str(BENCH))
    try:
        import search_speedup
    finally:
        sys.path.remove(str(BENCH))
    rows = [
        {"step": s, "step_time": t, "step_macs": m}
        for s, t, m in [(25, 1.0, 100e6), (50, 0.8, 80e6), (75, 0.5, 40e6), (100, 0.4, 25e6)]
    ]
    q = search_speedup.quarters(rows)
    assert q["first_rows"] == 1 and q["last_rows"] == 1
    assert q["speedup"] == 2.5 and q["macs_factor"] == 4.0 and q["required"] == 2.0


def _import_bench(name):
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize("space, size", [("seg_tiny", 64), ("cls_tiny", 32)])
def test_search_quality_baselines_hit_the_macs(space, size):
    import hrnas

    common, sq = _import_bench("_common"), _import_bench("search_quality")
    supernet = hrnas.get_space(space).supernet()
    target = 0.1 * hrnas.count_macs(supernet, size)
    uniform, _ = common.uniform_arch(supernet, target, size)
    randoms = [common.random_arch_at_macs(supernet, target, size, seed)[0] for seed in range(3)]
    for arch in [uniform, *randoms]:
        assert abs(hrnas.count_macs(arch, size) / target - 1) <= sq.TOLERANCE
        for b, full in zip(arch.blocks(), supernet.blocks()):
            assert all(0 <= c <= f for c, f in zip(b.channels, full.channels)) and 0 <= b.tokens <= full.tokens
    # uniform: one channel fraction everywhere (up to rounding), one token count in every transformer
    fracs = [c / f for b, full in zip(uniform.blocks(), supernet.blocks()) for c, f in zip(b.channels, full.channels)]
    assert max(fracs) - min(fracs) < 0.1
    assert len({b.tokens for b, full in zip(uniform.blocks(), supernet.blocks()) if full.tokens}) == 1
    assert len({a.to_json() for a in randoms}) == 3


@pytest.mark.benchmark
def test_search_quality_quick_mode(tmp_path):
    script = BENCH / "search_quality.py"
    subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)], check=True, timeout=900)
    for name in ["search_quality_quick.md", "search_quality_quick.csv", "search_quality_quick.png"]:
        assert (tmp_path / name).stat().st_size > 0
    table = (tmp_path / "search_quality_quick.md").read_text()
    assert "Produced by" in table
    methods = ["search", "search, retrained", "search, equal penalty", "search, no transformers", "uniform width"]
    for task in ("seg", "cls"):
        for method in [*methods, "random", "random #1", "random #2", "random #3"]:
            runs = 3 if method == "random" else 1
            assert f"| {task} | {method} | {runs} |" in table
    with open(tmp_path / "search_quality_quick.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * (len(methods) + 3)
    assert all(float(r["latency_ms"]) > 0 and r["arch"] for r in rows)


@pytest.mark.benchmark
def test_latency_model_quick_mode(tmp_path):
    script = BENCH / "latency_model.py"
    subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)], check=True, timeout=900)
    table = (tmp_path / "latency_model_quick.md").read_text()
    assert "Produced by" in table and "## 1. Predictor accuracy" in table
    with open(tmp_path / "latency_model_quick.csv") as f:
        rows = list(csv.DictReader(f))
    assert sum(r["part"] == "predictor" for r in rows) == 8
    search = [r for r in rows if r["part"] == "search"]
    jobs = ["macs", "family", "family", "family", "single 40%", "single 20%", "single 10%", "latency"]
    assert [r["job"] for r in search] == jobs + ["latency, table only"]
    # the family's members and the single searches meet their MACs budgets
    for r in search:
        if not r["job"].startswith("latency"):
            assert 0.9 * int(r["budget"]) <= int(r["macs"]) <= int(r["budget"])
    # with feedback the search timed its own final network; with the table alone it did not
    by_job = {r["job"]: r for r in search}
    assert float(by_job["latency"]["measured_in_search_ms"]) > 0
    assert by_job["latency, table only"]["measured_in_search_ms"] == ""
    # each latency search's budget is the measured latency of the MACs search of its seed, compared per seed
    assert int(by_job["latency"]["budget"]) == pytest.approx(1e3 * float(by_job["macs"]["target_ms"]), abs=1)
    assert "Latency-aware against MACs-aware, per seed" in table


def test_scripts_import_no_other_script():
    """What scripts share lives in modules whose names start with an underscore (benchmarks/_common.py)."""
    scripts = {p.stem for p in BENCH.glob("*.py")}
    for path in BENCH.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            shared = [n for n in names if n.split(".")[0] in scripts]
            assert all(n.startswith("_") for n in shared), f"{path.name} imports the script {shared}"


def test_common_files_and_timer(tmp_path):
    import torch

    common = _import_bench("_common")
    rows = [{"a": 1, "b": {"x": [1, 2]}}, {"a": 2, "c": None, "d": "e, f"}]
    common.write_csv(tmp_path / "t.csv", rows)  # columns: every key, in the order they first appear
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a,b,c,d", '1,"{""x"":[1,2]}",,', '2,,,"e, f"']
    common.write_csv(tmp_path / "u.csv", rows, ["d", "a"])
    assert (tmp_path / "u.csv").read_text().splitlines() == ["d,a", ",1", '"e, f",2']
    common.write_markdown(tmp_path / "sub" / "t.md", ["# t", "", *common.markdown_table(["x", "y"], [[1, ""]])])
    assert (tmp_path / "sub" / "t.md").read_text() == "# t\n\n| x | y |\n|---|---|\n| 1 |  |\n"
    assert common.machine().endswith(f"CPUs, torch {torch.__version__}")
    assert " threads, torch " in common.machine(threads=True)

    calls = []
    times = common.time_side_by_side({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, reps=2)
    assert calls == (["a"] * 3 + ["b"] * 3) * 3  # per round: each visit one untimed and two timed calls
    assert set(times) == {"a", "b"} and all(t >= 0 for t in times.values())


def test_search_quality_report_from_rows(tmp_path):
    """The report's tables from a run's rows, without training anything."""
    report, sq = _import_bench("_search_quality_report"), _import_bench("search_quality")
    rows = []
    for task in ("seg", "cls"):
        for method, arch_id in [(m, f"{m} s0") for m in report.METHOD_ORDER[:4]] + [
            (report.UNIFORM, report.UNIFORM), (report.RANDOM, "random #1"), (report.RANDOM, "random #2")
        ]:  # fmt: skip
            for seed in (0, 1):
                rows.append(
                    dict(task=task, method=method, arch_id=arch_id, seed=seed, metric=0.5 + 0.01 * seed, macs=1e6,
                         params=3e4, hidden=100, tokens=16, steps=10, train_s=12.0, arch={"blocks": [seed]},
                         latency_ms=2.0, latency_deploy_ms=1.5)
                )  # fmt: skip
    conf = dict(tasks={t: {**sq.TASKS[t], **sq.QUICK[t]} for t in ("seg", "cls")}, train=dict(sq.QUICK_TRAIN))
    meta = dict(
        command="python benchmarks/search_quality.py --quick", seeds=[0, 1], conf=conf, fitted={"seg": {"target": 1e6}},
        budgets={"seg": (1e7, 1e6), "cls": (5e6, 5e5)}, args=dict(workers=2, threads=1, latency_threads=1),
        train_min=1.0, lat_min=0.5, load=[1.0, 1.2], rounds=3, reps=2, steps={"seg": 10, "cls": 10}, tolerance=0.03,
    )  # fmt: skip
    report.write_report(rows, meta, tmp_path, "_quick")
    table = (tmp_path / "search_quality_quick.md").read_text()
    assert "| seg | random | 4 | 2 | 50.50 ± 0.58 [50.00, 51.00] |" in table
    assert "| cls | random #2 | 2 | 2 |" in table
    assert "| seg | search | uniform width | +0.00 | 0.71 | no | 1.000 |" in table  # equal means, seed spread 0.71
    with open(tmp_path / "search_quality_quick.csv") as f:
        written = list(csv.DictReader(f))
    assert len(written) == len(rows) and list(written[0])[-1] == "arch" and written[0]["arch"] == '{"blocks":[0]}'
    assert (tmp_path / "search_quality_quick.png").stat().st_size > 0


def _zoo_row(task, method, metric, model="hrnas_seg_a", **extra):
    row = {"model": model, "task": task, "method": method, "seed": 0, "metric_name": "mIoU", "metric": metric}
    return {**row, "params": 1_000, "macs": 1_000_000, "wall_s": 60.0, **extra}


def test_zoo_quality_checks_and_the_held_out_record_in_the_entry(tmp_path):
    import json
    import shutil

    from hrnas.archs import ZOO_DIR
    from hrnas.release.cards import zoo_card

    zq = _import_bench("zoo_quality")
    curve = [[100, 5e6, 0.10], [200, 4e6, 0.25], [300, 3e6, 0.20]]  # ends below its best: a collapse
    rows = [
        _zoo_row("proxy", "search", 0.20, curve=curve, branches=[1000, 5, 1000, 1000]),
        _zoo_row("proxy", "uniform", 0.15),
        _zoo_row("nuclei", "search", 0.60),
        _zoo_row("nuclei", "uniform", 0.58),
        _zoo_row("nuclei", "v1", 0.61),
        _zoo_row("nuclei", "hrnet_w18_small", 0.62, model="timm"),
        # seed-1 rows of methods whose search has not run seed 1: left out of every comparison
        _zoo_row("proxy", "uniform", 0.99, seed=1),
        _zoo_row("nuclei", "v1", 0.10, seed=1),
        _zoo_row("nuclei", "hrnet_w18_small", 0.10, model="timm", seed=1),
    ]
    checks = "\n".join(zq._checks(rows))
    assert "search 0.2000 vs uniform 0.1500 (difference +0.0500, seed spread 0.0000): beats" in checks
    assert "final 0.2000, best before 0.2500; spread 0.0000): FAILS" in checks
    assert "v1 0.6100 (1 seed): at least as good as uniform, not better than v1" in checks
    assert "stride 8 under 1 %" in checks

    source = Path(__file__).parent.parent / "hrnas" / "archs" / ZOO_DIR / "hrnas_seg_a.json"
    shutil.copy(source, tmp_path / "hrnas_seg_a.json")
    assert zq.record_held_out(rows, tmp_path) == ["hrnas_seg_a"]
    entry = json.loads((tmp_path / "hrnas_seg_a.json").read_text())
    held = entry["record"]["held_out"]
    assert held["metric"] == 0.6 and held["runs"] == 1
    assert held["others"] == {
        "uniform width at the same MACs": 0.58,
        "the first zoo's architecture": 0.61,
        "timm hrnet_w18_small": 0.62,
    }
    assert entry["arch"] == json.loads(source.read_text())["arch"]  # nothing else changed
    assert "mIoU 0.6000 for this architecture" in zoo_card(entry)


def test_zoo_quality_proxy_row_continues_only_its_own_interrupted_run(tmp_path, monkeypatch, capsys):
    """A proxy run cut off by the end of a sitting continues from its checkpoint; another job's files never do."""
    import json
    from types import SimpleNamespace

    from hrnas.archs import zoo_arch

    zq = _import_bench("zoo_quality")
    calls = []

    def run_recipe(recipe, *, seed, arch, output_dir, quick, resume):  # the run itself is tested in test_search.py
        calls.append(resume)
        assert json.loads((output_dir / "job.json").read_text())["seed"] == seed
        assert resume == (output_dir / "checkpoint.pt").is_file()  # a fresh start finds no earlier job's checkpoint
        (output_dir / "checkpoint.pt").write_bytes(b"checkpoint")
        (output_dir / "history.jsonl").write_text(json.dumps({"elapsed": 600.0}) + "\n")
        history = [{"step": 6, "macs": 1, "metric": 0.5, "threads": 1}]
        return SimpleNamespace(metric_name="top1", metric=0.5, history=history, arch=zoo_arch("hrnas_cls_b")), None

    monkeypatch.setattr(zq, "run_recipe", run_recipe)
    assert zq.run_proxy("hrnas_cls_b", "search", 0, True, tmp_path)["wall_s"] < 600
    # the same job again (its row was never written: the sitting ended): it continues, counting the earlier time
    assert zq.run_proxy("hrnas_cls_b", "search", 0, True, tmp_path)["wall_s"] >= 600
    assert calls == [False, True] and "continuing the run" in capsys.readouterr().out
    # the recipe changed since: start over
    job_file = tmp_path / "hrnas_cls_b-search-s0" / "job.json"
    job = json.loads(job_file.read_text())
    job_file.write_text(json.dumps({**job, "settings": {**job["settings"], "lr": 1.0}}))
    zq.run_proxy("hrnas_cls_b", "search", 0, True, tmp_path)
    assert calls == [False, True, False] and json.loads(job_file.read_text()) == job


def test_zoo_quality_nuclei_row_keeps_the_protocol_and_the_threads():
    """One held-out row, shortened (--quick): the nuclei run through timm ``features_only`` under the shared head."""
    import os

    import torch

    import hrnas
    from hrnas.arch import branch_hidden_channels
    from hrnas.archs import zoo_arch

    zq = _import_bench("zoo_quality")
    before = torch.get_num_threads()
    row = zq.run_nuclei("hrnas_seg_a", "v1", seed=0, quick=True)
    assert torch.get_num_threads() == before  # the thread tuner's choice does not outlive the row
    assert 1 <= row["threads"] <= (os.cpu_count() or 1)
    assert (row["model"], row["task"], row["method"], row["metric_name"]) == ("hrnas_seg_a", "nuclei", "v1", "mIoU")
    per_class = row["per_class_iou"]
    assert len(per_class) == zq.NUCLEI["classes"] == 3
    assert row["metric"] == pytest.approx(sum(per_class) / 3, abs=1e-3)
    v1 = zoo_arch("hrnas_seg_a", version=1).replace(task="seg").with_num_classes(3)
    assert row["branches"] == branch_hidden_channels(v1)
    assert row["macs_128"] == hrnas.count_macs(v1, (128, 128))


def test_vs_timm_compares_within_the_seed_spread_and_pairs_each_search_with_its_targets():
    vs_timm = _import_bench("vs_timm")

    def row(backbone, mean, sd, ms):
        return {"backbone": backbone, "mean": mean, "sd": sd, "ms": ms, "seeds": [0, 1, 2]}

    hrnet, mnv4 = row("hrnet_w18_small", 0.620, 0.006, 9.0), row("mobilenetv4_conv_small", 0.616, 0.001, 4.5)
    searched = row("nuclei_search_s", 0.630, 0.002, 4.3)
    assert vs_timm._compare(searched, mnv4, "nuclei")[2] == "better"
    assert vs_timm._compare(row("x", 0.624, 0.001, 1.0), hrnet, "nuclei")[2].startswith("tie")
    assert vs_timm._compare(mnv4, searched, "nuclei")[2] == "worse"
    # the faces' NME is lower-is-better: a lower error is a positive advantage
    gap, spread, verdict = vs_timm._compare(row("x", 0.05, 0.002, 1.0), row("y", 0.07, 0.005, 1.0), "faces")
    assert (round(gap, 4), spread, verdict) == (0.02, 0.005, "better")

    summary = [hrnet, mnv4, row("uniform_s", 0.615, 0.003, 4.1), searched, row("hrnas_seg_a", 0.64, 0.004, 28.0)]
    table = "\n".join(vs_timm._pairs(summary, "nuclei", {}))
    for against in ("mobilenetv4_conv_small", "hrnet_w18_small", "uniform_s"):
        assert f"| nuclei_search_s | {against} |" in table
    assert "hrnas_seg_a" not in table  # slower than every target, and searched to MACs, not to a latency

    # the landing table: judged on the reading beside the target alone, not on the pass over every backbone
    setup = {"nuclei_search_s": {"measured_ms": 3.9, "target_ms": 4.1}}
    lat = {"landing": [{"backbone": "nuclei_search_s", "task": "nuclei", "ratio": 0.95, "ratios": [0.97, 0.95, 0.89]}]}
    landing = vs_timm._landing({"nuclei": summary}, setup, lat)
    line = next(x for x in landing if x.startswith("| nuclei_search_s |"))
    cells = dict(zip(vs_timm._LANDING_COLUMNS, [c.strip() for c in line.strip("|").split("|")]))
    assert cells["in [0.9, 1.0]"] == "yes" and cells["this run, beside the target (median)"] == "0.9500"
    assert cells["this run, among all"] == f"{4.3 / 4.5:.4f}" and cells["each pass"] == "0.9700 / 0.9500 / 0.8900"
    lat["landing"][0]["ratio"] = 0.89
    assert "| 0.8900 | 0.9700 / 0.9500 / 0.8900 | no |" in "\n".join(vs_timm._landing({"nuclei": summary}, setup, lat))

    # a search read a hair over its target in the pass over all is as fast as it on the reading beside it alone;
    # the same reading decides nothing against a model it was not searched to
    searched["ms"] = 4.55
    assert not any("nuclei_search_s" in c and "mobilenetv4" in c for c in vs_timm._checks(summary, "nuclei", {}))
    lat["landing"][0]["ratio"] = 0.98
    checks = vs_timm._checks(summary, "nuclei", lat)
    assert "best hrnas nuclei_search_s (4.55 ms; 0.9800 of it beside it alone)" in checks[0]
    assert "| nuclei_search_s | mobilenetv4_conv_small |" in "\n".join(vs_timm._pairs(summary, "nuclei", lat))
    lat["landing"][0]["ratio"] = 1.01
    assert "| nuclei_search_s | mobilenetv4_conv_small |" not in "\n".join(vs_timm._pairs(summary, "nuclei", lat))
    assert vs_timm._as_fast(row("nuclei_search_s", 0.6, 0.0, 5.0), hrnet, "nuclei", lat)  # not its target: the ms
