"""Arch: JSON round trips, validation errors that name the field, the original release's format, spaces."""

import json
from pathlib import Path

import pytest
from helpers import tiny_arch

import hrnas
from hrnas import Arch, ArchError, BlockSpec

RELEASED = Path(hrnas.__file__).parent / "archs" / "hrnas_released_cls_original.json"


@pytest.mark.parametrize("space", hrnas.list_spaces())
@pytest.mark.parametrize("transformers", [True, False])
def test_json_round_trip_every_space(space, transformers):
    arch = hrnas.get_space(space).supernet(transformers=transformers)
    again = Arch.from_json(arch.to_json())
    assert again == arch
    assert again.to_dict() == arch.to_dict()


def test_round_trip_searched_arch_and_file(tmp_path):
    arch = tiny_arch()
    path = tmp_path / "arch.json"
    arch.save(path)
    assert Arch.load(path) == arch
    assert Arch.coerce(str(path)) == arch
    assert Arch.coerce(arch.to_dict()) == arch
    assert Arch.coerce(arch.to_json()) == arch
    assert not list(tmp_path.glob("*.tmp*"))  # atomic write leaves nothing behind


def test_paper_spaces_block_counts():
    # reference section 2.2 / 4.1: 61 blocks for seg and keypoints, 67 for cls, 44 with identity residuals;
    # 44,928 searchable depthwise channels for seg/keypoints and 47,952 for cls
    for space, n_blocks, n_channels in [("seg", 61, 44928), ("pose", 61, 44928), ("cls", 67, 47952)]:
        arch = hrnas.get_space(space).supernet()
        blocks = arch.blocks()
        assert len(blocks) == n_blocks
        assert sum(b.has_identity for b in blocks) == 44
        assert sum(b.hidden for b in blocks) == n_channels
        # transformers by default in every identity-residual block, with 64 tokens
        assert [b.tokens for b in blocks] == [64 if b.has_identity else 0 for b in blocks]
        assert all(b.tokens == 0 for b in hrnas.get_space(space).supernet(transformers=False).blocks())
    all_blocks = hrnas.get_space("seg").supernet(transformers="all").blocks()
    assert all(b.tokens == 64 for b in all_blocks)


def test_block_names_follow_module_layout():
    arch = hrnas.get_space("seg").supernet()
    names = [n for n, _ in arch.named_blocks()]
    # construction order of the original: per stage the fusion edges (output-major, source ascending, new
    # branches last), then the parallel blocks; the head's block last
    assert names[:5] == [
        "stages.0.fuse.0.0",
        "stages.0.branches.0.0",
        "stages.1.fuse.0.0",
        "stages.1.fuse.1.0",
        "stages.1.branches.0.0",
    ]
    assert names[-1] == "neck.block"
    stage2 = [n for n in names if n.startswith("stages.2.fuse")]
    assert stage2 == [
        "stages.2.fuse.0.0",
        "stages.2.fuse.0.1",
        "stages.2.fuse.1.0",
        "stages.2.fuse.1.1",
        "stages.2.fuse.2.1",
    ]


def test_released_original_format_import_and_export():
    entries = json.loads(RELEASED.read_text())
    search = hrnas.released_cls_arch("search")
    assert len(search.blocks()) == 67
    assert sum(b.hidden for b in search.blocks()) == 6662  # reference section 5.2: 6,662 of 47,952 kept
    assert search.to_original_blocks() == entries
    named = dict(search.named_blocks())
    # spot checks against the decoded table in the reference (section 5.2)
    assert named["stages.0.fuse.0.0"].paths == ((3, 32), (5, 12), (7, 1))
    assert named["stages.2.fuse.0.1"].paths == ((3, 3), (7, 1))
    assert named["stages.2.branches.0.0"].paths == ()
    assert named["neck.down.2"] == BlockSpec(144, 320, 2, (3, 5, 7), (29, 22, 108))
    retrain = hrnas.released_cls_arch("retrain")
    assert retrain.act == "swish" and retrain.head.dropout == 0.28
    assert all(b.se_ratio == 0.5 and b.act == "swish" for b in retrain.blocks())


def test_original_format_errors():
    space = hrnas.get_space("cls").supernet(transformers=False)
    entries = json.loads(RELEASED.read_text())
    with pytest.raises(ArchError, match="expected 67 block entries"):
        space.with_original_blocks(entries[:-1])
    bad = [list(e) for e in entries]
    bad[3][0] = 99
    with pytest.raises(ArchError, match=r"original\[3\] \(stages.1.fuse.1.0\).*out/stride 99/2"):
        space.with_original_blocks(bad)
    bad = [list(e) for e in entries]
    bad[0][3] = [3, 9, 7]
    with pytest.raises(ArchError, match=r"kernel sizes \[9\] are not in the space"):
        space.with_original_blocks(bad)


def _mutated(path, value):
    d = hrnas.get_space("seg_tiny").supernet().to_dict()
    node = d
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("task",), "detect", r"^task: must be one of"),
        (("stem",), [16], r"^stem: must be two positive channel counts"),
        (("stages",), KeyError, r"^stages: missing required field"),
        (("stages", 1, "fuse", 0, "block", "channels"), [8, 8], r"stages\[1\]\.fuse\[0\]\.block\.channels: needs one"),
        (("stages", 1, "fuse", 1, "block", "stride"), 1, r"stages\[1\]\.fuse\[1\]\.block\.stride: must be 2 here"),
        (("stages", 2, "branches", 0, 0, "out"), 13, r"stages\[2\]\.branches\[0\]\[0\]\.out: must be 12 here"),
        (("stages", 2, "branches", 0, 0, "channels"), [8, -1, 8], r"channel counts must be integers >= 0"),
        (("stages", 2, "branches", 0, 0, "kernels"), [3, 4, 7], r"kernel sizes must be odd"),
        (("stages", 2, "branches", 0, 0, "act"), "gelu", r"\.act: must be one of"),
        (("stages", 2, "branches", 0, 0, "tokens"), "many", r"\.tokens: must be an integer, got 'many'"),
        (("stages", 2, "fuse"), [], r"stages\[2\]\.fuse: neighbour-only fusion from 2 to 3 branches needs edges"),
        (("head", "type"), "mlp", r"^head\.type: must be 'dense' or 'cls'"),
        (("head", "block", "in"), 100, r"^head\.block\.in: must be 180 here"),
        (("head", "num_classes"), -3, r"^head\.num_classes: must be an integer >= 0"),
        (("bn", "eps"), 0, r"^bn\.eps: must be > 0"),
        (("format",), "timm", r"^format: expected 'hrnas-arch'"),
    ],
)
def test_malformed_json_names_the_field(path, value, message):
    with pytest.raises(ArchError, match=message):
        Arch.from_dict(_mutated(path, value))


def test_malformed_json_text_and_files(tmp_path):
    with pytest.raises(ArchError, match="not valid JSON"):
        Arch.from_json("{'stem': ")
    with pytest.raises(ArchError, match="expected a JSON object, got list"):
        Arch.from_json("[1, 2]")
    with pytest.raises(ArchError, match="does not exist"):
        Arch.load(tmp_path / "missing.json")
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(_mutated(("stem",), [0, 16])))
    with pytest.raises(ArchError, match=r"bad\.json: stem: must be two positive"):
        Arch.load(p)


def test_arch_error_is_value_error():
    assert issubclass(ArchError, ValueError)


def test_with_blocks_and_mapping():
    arch = hrnas.get_space("seg_tiny").supernet(transformers=False)
    named = dict(arch.named_blocks())
    new = arch.with_blocks({"neck.block": named["neck.block"].replace(channels=(1, 0, 2))})
    assert dict(new.named_blocks())["neck.block"].channels == (1, 0, 2)
    assert dict(new.named_blocks())["stages.0.fuse.0.0"] == named["stages.0.fuse.0.0"]
    with pytest.raises(ArchError, match="unknown block names"):
        arch.with_blocks({"neck.nothing": named["neck.block"]})
    with pytest.raises(ArchError, match="expected 27 blocks, got 26"):
        arch.with_blocks(arch.blocks()[:-1])


def test_summary_is_readable():
    arch = hrnas.released_cls_arch("retrain")
    text = hrnas.summary(arch, input_size=224)
    assert "HR-NAS cls network 'hrnas_released_cls'" in text
    assert "stages.2.fuse.0.1" in text and "3:3 7:1" in text
    assert "(residual only)" in text and "MMACs" in text
    assert "4.600 M params" in text and "0.2599 GMACs at 224x224" in text
    assert str(arch) == arch.table() and hrnas.summary(arch).startswith(str(arch))
    assert "4.600 M params" in hrnas.summary(arch) and "MMACs" not in hrnas.summary(arch)


def test_get_space_unknown_suggests():
    with pytest.raises(ArchError, match=r"unknown search space 'segg'\. Did you mean 'seg'"):
        hrnas.get_space("segg")
