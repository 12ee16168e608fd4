"""The zoo: registration follows the shipped architectures, budgets hold at the named configuration, tags and cards."""

import json

import pytest
import timm

import hrnas
from hrnas.arch import branch_hidden_channels
from hrnas.archs import zoo_arch, zoo_entries, zoo_entry
from hrnas.release.cards import zoo_card
from hrnas.release.recipes import ZOO_RECIPES
from hrnas.searching.budget import parse_amount

SHIPPED_SEARCHED = [n for n in zoo_entries() if n in ZOO_RECIPES and ZOO_RECIPES[n].budget]


def test_searched_names_are_registered_exactly_when_their_architecture_ships():
    for name, recipe in ZOO_RECIPES.items():
        if recipe.budget:
            assert timm.is_model(name) == (name in zoo_entries()), name
    assert timm.is_model("hrnas_cls_a")  # the released architecture is always there


@pytest.mark.model
@pytest.mark.parametrize("name", SHIPPED_SEARCHED)
def test_budget_holds_at_the_named_configuration(name):
    entry = zoo_entry(name)
    named = entry["record"]["named_configuration"]
    size = tuple(named["input_size"])
    model = hrnas.create_model(name)
    assert model.arch.task == named["task"] and model.num_classes == named["num_classes"]
    macs = hrnas.count_macs(model.arch, size)
    budget = parse_amount(entry["record"]["budget"])
    assert 0.9 * budget <= macs <= budget, (name, macs, budget)
    assert hrnas.profile(model, size).macs == macs == entry["record"]["macs"]
    assert hrnas.count_params(model.arch) == entry["record"]["params"]


@pytest.mark.parametrize("name", SHIPPED_SEARCHED)
def test_cards_say_where_the_searched_channels_went(name):
    arch = zoo_arch(name)
    widths = branch_hidden_channels(arch)
    in_branches = [b.hidden for n, b in arch.named_blocks() if ".branches." in n or ".fuse." in n]
    assert sum(widths) == sum(in_branches) and len(widths) == 4
    card = zoo_card(zoo_entry(name))
    assert "Hidden channels by branch (stride 4 / 8 / 16 / 32): " + " / ".join(map(str, widths)) in card
    assert ("kept (almost) no hidden channels" in card) == any(w < 0.01 * sum(widths) for w in widths)
    assert "Proxy metric over the run: best" in card
    run = [r for r in zoo_entry(name)["record"]["run"] if r[2] is not None]
    assert f"{run[0][0]}: {run[0][2]:.3f}" in card and f"{run[-1][0]}: {run[-1][2]:.3f}" in card  # the whole curve
    # the seg models' held-out result (benchmarks/zoo_quality.py --record-held-out)
    assert ("## Held-out result" in card) == (zoo_entry(name)["record"]["named_configuration"]["task"] == "seg")


def test_default_is_the_sized_configuration_and_tags_name_their_data():
    assert hrnas.create_model("hrnas_cls_a").num_classes == 1000
    tagged = hrnas.create_model("hrnas_cls_a.fmnist")
    assert tagged.num_classes == 10 and tagged.pretrained_cfg["input_size"] == (3, 32, 32)
    # not published, and not built in the tests' empty weights directory (conftest): so not advertised either
    assert not tagged.pretrained_cfg.get("hf_hub_id") and not tagged.pretrained_cfg.get("file")
    assert timm.list_pretrained("hrnas_*") == []


def _fake_entry(budget="1.4G", tag="textured_scenes"):
    return {
        "name": "hrnas_seg_a",
        "arch": {},
        "record": {
            "named_configuration": {"task": "seg", "num_classes": 150, "input_size": [512, 512]},
            "budget": budget,
            "macs": 1_330_000_000,
            "params": 3_000_000,
            "about": "the paper's HR-NAS-A budget",
            "why_no_weights": "no data",
            "searched_on": "Fashion-MNIST scenes (proxy)",
            "settings": {"seed": 0, "steps": 10},
            "command": "hrnas zoo-build hrnas_seg_a --output-dir runs/zoo",
        },
    }


def test_model_cards_state_data_budget_command_and_limits():
    card = zoo_card(_fake_entry(), "textured_scenes", 0.25)
    assert card.startswith("---\nlibrary_name: timm\n")
    for text in ("`hrnas zoo-build hrnas_seg_a", "Fashion-MNIST scenes", "1.4G", "mIoU 0.2500", "Not good for"):
        assert text in card, text
    assert "create_model('hrnas_seg_a.textured_scenes', pretrained=True)" in card
    bare = zoo_card(_fake_entry(tag=None))
    assert "None: no data." in bare and "pretrained=True" not in bare
    assert "Held-out result" not in card


def test_model_cards_show_the_held_out_result_beside_the_other_backbones():
    entry = _fake_entry()
    entry["record"]["held_out"] = {
        "task": "nuclei",
        "metric_name": "mIoU",
        "metric": 0.61234,
        "runs": 2,
        "others": {"uniform width at the same MACs": 0.58, "timm hrnet_w18_small": 0.6},
        "protocol": "Trained from scratch.",
        "source": "benchmarks/results/zoo_quality.md",
    }
    card = zoo_card(entry, "textured_scenes", 0.25)
    held = card[card.index("## Held-out result") :]
    assert "nuclei: mIoU 0.6123 for this architecture trained from scratch (2 seeds)" in held
    assert "uniform width at the same MACs 0.5800, timm hrnet_w18_small 0.6000" in held
    assert "`benchmarks/results/zoo_quality.md`" in held


@pytest.mark.search
def test_zoo_build_quick_writes_entry_and_weights(tmp_path):
    from hrnas.cli import main

    assert main(["zoo-build", "hrnas_cls_a", "--output-dir", str(tmp_path), "--quick", "--no-progress"]) == 0
    entry = json.loads((tmp_path / "hrnas_cls_a.json").read_text())
    assert entry["record"]["command"].endswith("--quick")
    weights = tmp_path / "hrnas_cls_a.fmnist"
    config = json.loads((weights / "config.json").read_text())
    assert config["architecture"] == "hrnas_cls_a" and config["num_classes"] == 10
    model = hrnas.create_model(str(weights))
    assert model.arch.blocks() == hrnas.create_model("hrnas_cls_a").arch.blocks()
    assert "Fashion-MNIST classification" in (weights / "README.md").read_text()
    # a run continued from its checkpoint (here: one that had finished) ends with the same entry
    assert (
        main(["zoo-build", "hrnas_cls_a", "--output-dir", str(tmp_path), "--quick", "--no-progress", "--resume"]) == 0
    )
    again = json.loads((tmp_path / "hrnas_cls_a.json").read_text())
    assert again["arch"] == entry["arch"] and again["record"]["proxy_metric"] == entry["record"]["proxy_metric"]


def test_zoo_build_resume_needs_a_checkpoint(tmp_path):
    from hrnas.release.recipes import run_recipe

    with pytest.raises(FileNotFoundError, match="nothing to resume: no checkpoint.pt"):
        run_recipe(ZOO_RECIPES["hrnas_cls_b"], output_dir=tmp_path, resume=True)


def test_zoo_page_holds_the_current_table():
    """docs/zoo.md carries the generated table in the file (so it reads on any Markdown viewer); regenerate it with
    `make zoo-table` when this fails."""
    from pathlib import Path

    from hrnas.release.zoo_table import render, zoo_table

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "zoo.md").read_text()
    assert render(page, zoo_table(root / "benchmarks" / "results" / "latency.csv")) == page, "run `make zoo-table`"
    for name in hrnas.list_models():
        assert f"| `{name}` |" in page


def test_zoo_table_shows_no_latency_timed_on_another_network(tmp_path):
    """A latency row whose GMACs are not the shipped architecture's (the architecture changed after the benchmark
    ran) is not shown as its latency."""
    from hrnas.release.zoo_table import zoo_table

    macs = hrnas.count_macs(hrnas.create_model("hrnas_cls_a").arch, (224, 224)) / 1e9
    header = "model,form,input,batch,latency_ms,gmacs_per_image,achieved_gmac_s,peak_fraction\n"
    csv = tmp_path / "latency.csv"
    csv.write_text(header + f"hrnas_cls_a,eval,224x224,1,71.72,{macs:.4f},3.6,0.04\n")
    assert "224x224: 71.7 ms eval |" in zoo_table(csv)
    csv.write_text(header + f"hrnas_cls_a,eval,224x224,1,71.72,{2 * macs:.4f},3.6,0.04\n")
    table = zoo_table(csv)
    assert "71.7 ms" not in table
    assert "| `hrnas_cls_a` |" in table and "not measured since the architecture changed |" in table
    # two networks searched to one budget can have the same MACs: a recorded digest decides
    arch = hrnas.create_model("hrnas_cls_a").arch
    other = hrnas.create_model("hrnas_cls_b").arch
    assert arch.digest() == arch.replace(name="renamed").digest() != other.digest()
    for digest, shown in ((arch.digest(), True), (other.digest(), False)):
        csv.write_text(
            header.rstrip() + ",arch_digest\n" + f"hrnas_cls_a,eval,224x224,1,71.72,{macs:.4f},3.6,0.04,{digest}\n"
        )
        assert ("224x224: 71.7 ms eval |" in zoo_table(csv)) == shown


@pytest.mark.parametrize("name, budget", [("hrnas_seg_a", 1.4e9), ("hrnas_seg_b", 2.2e9)])
def test_seg_models_meet_the_papers_budgets_counted_at_224_with_150_classes(name, budget):
    """The paper's HR-NAS-A / -B budgets, counted as its code counts them (224x224, 150 ADE20K classes); the
    catalog also states the cost at ADE20K's 512x512, which must be this architecture's."""
    from hrnas.catalog import catalog_entry

    model = hrnas.create_model(name)
    assert model.num_classes == 150
    assert 0.9 * budget <= hrnas.count_macs(model.arch, (224, 224)) <= budget
    at_512 = hrnas.count_macs(model.arch, (512, 512)) / 1e9
    assert f"{at_512:.1f} G at 512x512" in catalog_entry(name).description


@pytest.mark.model
@pytest.mark.parametrize("name", SHIPPED_SEARCHED)
def test_the_first_zoos_architecture_stays_buildable(name):
    """``arch_version=1`` builds the first zoo's architecture (so earlier results reproduce), without weights."""
    old = hrnas.create_model(name, arch_version=1)
    assert old.arch == zoo_arch(name, version=1)
    record = zoo_entry(name, version=1)["record"]
    assert hrnas.count_macs(old.arch, tuple(record["named_configuration"]["input_size"])) == record["macs"]
    from hrnas.zoo import WeightsUnavailableError

    with pytest.raises((ValueError, WeightsUnavailableError), match="no (pretrained )?weights"):
        hrnas.create_model(name, arch_version=1, pretrained=True)


def test_textured_weights_tags_carry_the_proxys_normalisation():
    from hrnas.catalog import CATALOG
    from hrnas.data import textured

    tags = {t.tag: t for e in CATALOG for t in e.tags}
    textured_tags = [t for t in tags if t.startswith("textured")]
    assert {"textured_scenes", "textured_fmnist"} <= set(textured_tags)
    for tag in textured_tags:
        assert tags[tag].mean == (textured.MEAN,) * 3 and tags[tag].std == (textured.STD,) * 3
