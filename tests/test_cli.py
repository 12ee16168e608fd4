"""The hrnas command line (run in-process through hrnas.cli.main)."""

import json

import pytest
import timm

import hrnas
from hrnas.cli import main


def test_list_spaces_summary_profile(capsys):
    assert main(["list", "*tiny*"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == ["hrnas_supernet_tiny_seg", "hrnas_supernet_tiny_cls"]
    assert "[11 classes, 64x64]" in out
    # every name with weights, each tag with the data it was trained on, and nothing without weights
    assert main(["list", "--pretrained"]) == 0
    out = capsys.readouterr().out
    tagged = timm.list_pretrained("hrnas_*")
    assert {line.split()[0] for line in out.splitlines() if not line.startswith(" ")} == {
        n.split(".")[0] for n in tagged
    }
    for name in tagged:
        assert f".{name.split('.', 1)[1]}: weights trained on " in out
    assert main(["list", "hrnas_nothing*"]) == 1
    assert main(["spaces"]) == 0
    assert "seg_ade" in capsys.readouterr().out
    assert main(["profile", "hrnas_cls_a"]) == 0
    assert "4.600 M params, 0.2599 GMACs at 224x224 (convention 'paper'" in capsys.readouterr().out
    assert main(["summary", "hrnas_supernet_tiny_cls", "--input-size", "32", "32"]) == 0
    assert "neck.down.2" in capsys.readouterr().out


def test_profile_an_arch_file_and_errors(tmp_path, capsys):
    path = tmp_path / "a.json"
    hrnas.released_cls_arch("search").save(path)
    assert main(["profile", str(path), "--input-size", "224", "224", "--depth", "1"]) == 0
    assert "0.2592 GMACs" in capsys.readouterr().out
    assert main(["profile", "hrnas_nope"]) == 2
    assert "unknown model 'hrnas_nope'" in capsys.readouterr().err


@pytest.mark.search
def test_search_command_and_config_repeat(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "search",
        "--image-size",
        "32",
        "--train-size",
        "64",
        "--val-size",
        "16",
        "--steps",
        "12",
        "--batch-size",
        "8",
        "--budget-fraction",
        "0.5",
        "--output-dir",
        str(out),
        "--no-progress",
        "--threads",
        "1",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "budget:" in text and "validation mIoU" in text and f"saved to {out}" in text
    assert "for set-up and search (1 CPU threads, as asked)" in text and "HR-NAS seg network 'seg_tiny_" in text
    model = hrnas.create_model(str(out))
    assert isinstance(model, hrnas.HRNASNet)
    cfg = hrnas.SearchConfig.from_yaml(out / "config.yaml")
    assert cfg.data["name"] == "fmnist-scenes" and cfg.supernet["space"] == "seg_tiny"
    again = tmp_path / "again"
    assert main(["search", "--config", str(out / "config.yaml"), "--output-dir", str(again)]) == 0
    rows = [json.loads(line) for line in (again / "history.jsonl").read_text().splitlines()]
    first = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [r["macs"] for r in rows] == [r["macs"] for r in first]  # the same run again
    assert rows[-1]["metric"] == pytest.approx(first[-1]["metric"])
