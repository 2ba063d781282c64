"""The sequence task in the training loop: rows, batches, decoding, scores, configs (issue 12)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from helpers.repo_paths import CONFIGS

from labelemb.config import ConfigError
from labelemb.data.text.corpus import BOS, EOS, PAD, UNK, TextSplit, Vocabulary
from labelemb.data.text.sequences import TextPairs, encode_split, find_corpus, load_text_dataset
from labelemb.tasks.seq2seq import DecodeOptions, SequenceTask
from labelemb.training import build_config, load_config, train

#: What shrinks any text config to a few seconds: a tiny model, a few updates, short decodes.
QUICK = [
    "data.max_train_pairs=300",
    "data.text.vocabulary_size=300",
    "model.embedding=16",
    "model.hidden=16",
    "model.layers=1",
    "train.max_steps=4",
    "train.batch_size=16",
    "train.eval_every=32",
    "train.progress=false",
    "decode.max_length=4",
    "decode.length_ratio=0",
    "decode.beam=1",
]


def vocabulary(words: str) -> Vocabulary:
    return Vocabulary(words.split())


def pairs(source: list[str], target: list[str]) -> TextPairs:
    split = TextSplit([s.split() for s in source], [t.split() for t in target], list(target))
    return encode_split(split, vocabulary("a b c d e"), vocabulary("x y z"))


def task(metric: str = "bleu", **decoding) -> SequenceTask:
    return SequenceTask(metric, vocabulary("x y z"), [False, False], DecodeOptions(**decoding))


# ---------------------------------------------------------------- rows and batches


def test_rows_are_the_features_at_non_padding_positions():
    features = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    targets = torch.tensor([[4, 5, 3], [6, 3, 0]])  # 0 is <pad>
    rows, labels = task().rows(features, targets)
    assert rows.shape == (5, 4)
    assert torch.equal(rows[3], features[1, 0]) and torch.equal(rows[4], features[1, 1])
    assert labels.tolist() == [4, 5, 3, 6, 3]


def test_a_batch_is_cut_to_its_longest_sentence_and_shifted():
    split = pairs(["a b c d e", "a", "b c"], ["x y z", "x", "y"])
    (source, target_in), target_out = task().batch(split, torch.tensor([1, 2]))
    assert source.tolist() == [[4, 0], [5, 6]]  # a; b c (the 5-token sentence is not in the batch)
    assert target_in.tolist() == [[2, 4], [2, 5]]  # <s> x ; <s> y
    assert target_out.tolist() == [[4, 3], [5, 3]]  # x </s> ; y </s>


def test_epoch_order_is_batches_of_similar_length_set_by_seed_and_epoch():
    lengths = [1 + (i * 7919) % 40 for i in range(203)]
    split = pairs(["a " * n for n in lengths], ["x"] * len(lengths))
    order = task().epoch_order(split, seed=3, epoch=1, batch_size=10)
    assert sorted(order.tolist()) == list(range(203))
    assert torch.equal(order, task().epoch_order(split, seed=3, epoch=1, batch_size=10))
    assert not torch.equal(order, task().epoch_order(split, seed=3, epoch=2, batch_size=10))
    spreads = [
        max(lengths[i] for i in order[k : k + 10].tolist())
        - min(lengths[i] for i in order[k : k + 10].tolist())
        for k in range(0, 200, 10)
    ]
    assert max(spreads) <= 3  # each consecutive slice of 10 is one length-sorted batch


def test_the_one_short_batch_comes_last():
    split = pairs(["a"] * 25, ["x"] * 25)
    batches = task().epoch_order(split, seed=0, epoch=0, batch_size=10).split(10)
    assert [len(b) for b in batches] == [10, 10, 5]


# ---------------------------------------------------------------- decoding


class _Attending(torch.nn.Module):
    """A stand-in decoder whose attention at output step t falls on source position ``where[t]``."""

    def __init__(self, where: list[int], source_length: int) -> None:
        super().__init__()
        self.where, self.source_length = where, source_length

    def decode(self, encoded, target_in, state=None):
        attention = torch.zeros(target_in.shape[0], target_in.shape[1], self.source_length)
        for t in range(target_in.shape[1]):
            attention[:, t, self.where[t]] = 1.0
        return None, None, attention


def test_unknown_words_become_the_most_attended_source_word():
    vocab = vocabulary("x y")
    seq = SequenceTask("bleu", vocab, [False], DecodeOptions(replace_unk=True))
    unk, x = vocab.index[UNK], vocab.index["x"]
    encoded = SimpleNamespace(mask=torch.ones(1, 3, dtype=torch.bool))
    words = seq._replace_unknown(
        _Attending([2, 0, 1], 3), encoded, [[unk, x, unk]], [["ein", "zwei", "drei"]]
    )
    assert words == [["drei", "x", "zwei"]]


def test_decoding_is_the_same_alone_and_in_a_padded_batch():
    torch.manual_seed(0)
    from labelemb.methods import build
    from labelemb.models import Seq2Seq
    from labelemb.tasks import Predictor

    model, method = (
        Seq2Seq(9, 7, embedding=8, hidden=8, layers=1, dropout=0.0),
        build("onehot", in_features=8, num_classes=7),
    )
    network = torch.nn.ModuleDict({"model": model, "method": method})
    predictor = Predictor(network, model, method)
    split = pairs(["a b c d e", "c", "b c d"], ["x", "y", "z"])
    seq = SequenceTask("bleu", vocabulary("x y z"), [False] * 3, DecodeOptions(max_length=6, batch_size=3))
    together = seq.decode_split(predictor, split)
    alone = [seq.decode_split(predictor, pairs([s], ["x"]))[0] for s in ["a b c d e", "c", "b c d"]]
    assert together == alone
    assert all(len(sentence) <= 6 for sentence in together)


# ---------------------------------------------------------------- configs and runs


def test_text_corpora_are_found_in_data_dir_or_labelemb_data(ddtp_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("LABELEMB_DATA", raising=False)
    assert find_corpus("ddtp-en-it", ddtp_dir.parent) == ddtp_dir  # its debian-ddtp/ subfolder
    assert find_corpus("ddtp-en-it", ddtp_dir) == ddtp_dir
    monkeypatch.setenv("LABELEMB_DATA", str(ddtp_dir.parent))
    assert find_corpus("ddtp-summarize", None) == ddtp_dir
    monkeypatch.delenv("LABELEMB_DATA")
    with pytest.raises(ValueError, match=r"corpus lcsts not found: no train.src in .*\. Get it from"):
        find_corpus("lcsts", tmp_path)


def test_a_test_set_wholly_in_training_cannot_be_scored(tmp_path):
    from labelemb.data import DataError

    for stem in ("train", "tst2012", "tst2013"):
        (tmp_path / f"{stem}.en").write_text("a b\nc d\n", encoding="utf-8")
        (tmp_path / f"{stem}.vi").write_text("x y\nz w\n", encoding="utf-8")
    with pytest.raises(DataError, match="every test pair also occurs in the training files"):
        load_text_dataset("iwslt15-en-vi", tmp_path)


def test_truncated_sources_and_training_limits(ddtp_dir):
    data = load_text_dataset(
        "ddtp-summarize",
        ddtp_dir,
        max_train_pairs=500,
        max_source_tokens=None,
        truncate_source=12,
        vocabulary_size=100,
    )
    assert int(data.train.source_lengths.max()) <= 12 and int(data.test.source_lengths.max()) <= 12
    assert len(data.train) == 500 and len(data.test) == 1_122  # test pairs are never dropped
    assert len(data.source_vocabulary) == len(data.target_vocabulary) == 100
    limited = load_text_dataset("ddtp-summarize", ddtp_dir, max_train_pairs=500, vocabulary_size=100)
    assert len(limited.train) + limited.dropped_long == 500
    assert int(limited.train.source_lengths.max()) <= 50


@pytest.mark.parametrize("name", ["ddtp-summarize", "ddtp-en-it"])
def test_a_few_updates_of_each_cpu_config(name, ddtp_dir, tmp_path, one_thread):
    config = load_config(CONFIGS / f"{name}.yaml", [*QUICK, f"data.dir={ddtp_dir}", f"output_dir={tmp_path}"])
    summary = train(config)
    run = config.run_dir()
    scores = ["bleu"] if name == "ddtp-en-it" else ["rouge1", "rouge2", "rougeL"]
    for score in scores:
        assert 0.0 <= summary[f"selected_test_{score}"] <= 100.0
        assert f"final_test_{score}_all" in summary and f"final_dev_{score}" in summary
    assert summary["steps"] == 4 and summary["metric"] == f"test_{scores[-1]}"
    assert summary["higher_is_better"] is True
    assert summary["test_in_train"] == (138 if name == "ddtp-en-it" else 0)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    for record in records:
        assert {"step", "epoch", f"dev_{scores[-1]}", f"test_{scores[-1]}"} <= set(record)
    target_words = (run / "vocabulary.target.txt").read_text(encoding="utf-8").splitlines()
    assert target_words[:4] == [PAD, UNK, BOS, EOS] and target_words == summary["class_names"]
    decoded = (run / summary["selected_outputs"] / "test.txt").read_text(encoding="utf-8").splitlines()
    assert len(decoded) == (2_049 if name == "ddtp-en-it" else 1_122)
    assert all(len(line.split()) <= 4 for line in decoded)
    from labelemb.analysis.analyze import analyze

    with pytest.raises(ValueError, match=r"has 300 labels: pictures of 300 are unreadable; pass --classes"):
        analyze([run], tmp_path / "pictures")


@pytest.mark.parametrize("name", ["iwslt15-en-vi", "lcsts"])
def test_a_few_updates_of_each_released_config(name, tmp_path, one_thread):
    """The released configs on corpora of their layout made here (the real ones are the user's)."""
    data = tmp_path / "data"
    data.mkdir()
    english = ["the cat sat", "a dog ran home", "we like tea", "it is late"] * 20
    other = ["con mèo ngồi", "con chó chạy về", "chúng tôi thích trà", "muộn rồi"] * 20
    held_out = (["the dog sat", "we ran home"], ["con chó ngồi", "chúng tôi chạy về"])
    if name == "iwslt15-en-vi":
        files = {"train": (english, other), "tst2012": held_out, "tst2013": held_out}
        suffixes = ("en", "vi")
    else:
        chinese = ["今天天气很好", "我们去公园", "他喜欢喝茶", "时间不早了"] * 20
        test = (["今天去公园", "他喜欢天气"], ["去公园", "天气"])
        files = {"train": (chinese, chinese), "valid": test, "test": test}
        suffixes = ("src", "tgt")
    for stem, (source, target) in files.items():
        (data / f"{stem}.{suffixes[0]}").write_text("\n".join(source) + "\n", encoding="utf-8")
        (data / f"{stem}.{suffixes[1]}").write_text("\n".join(target) + "\n", encoding="utf-8")
    overrides = [*QUICK, "decode.beam=2", f"data.dir={data}", f"output_dir={tmp_path / 'runs'}"]
    summary = train(load_config(CONFIGS / f"{name}.yaml", overrides))
    assert summary["steps"] == 4 and summary["decoding"]["beam"] == 2
    key = "test_bleu" if name == "iwslt15-en-vi" else "test_rougeL"
    assert summary["metric"] == key and 0.0 <= summary[f"selected_{key}"] <= 100.0


def test_the_same_seed_gives_the_same_scores(ddtp_dir, tmp_path, one_thread):
    runs = []
    for folder in ("a", "b"):
        config = load_config(
            CONFIGS / "ddtp-en-it.yaml", [*QUICK, f"data.dir={ddtp_dir}", f"output_dir={tmp_path / folder}"]
        )
        runs.append(train(config))
        runs[-1]["_losses"] = [
            json.loads(line)["train_loss"]
            for line in (config.run_dir() / "metrics.jsonl").read_text().splitlines()
        ]
    keep = ("selected_test_bleu", "final_test_bleu_all", "final_dev_bleu", "_losses")
    assert {k: runs[0][k] for k in keep} == {k: runs[1][k] for k in keep}


def test_compare_reads_text_runs(ddtp_dir, tmp_path, one_thread):
    from labelemb.experiment import write_comparison

    base = load_config(
        CONFIGS / "ddtp-summarize.yaml", [*QUICK, f"data.dir={ddtp_dir}", f"output_dir={tmp_path}"]
    )
    for method in ("onehot", "label_embedding"):
        for seed in (0, 1):
            train(base.with_method(method).with_seed(seed))
    table = write_comparison(tmp_path / "ddtp-summarize").to_markdown()
    assert "test ROUGE-L (selected)" in table and "test ROUGE-1 (selected)" in table
    assert (tmp_path / "ddtp-summarize" / "curves.png").stat().st_size > 0
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:] if line.startswith("|")}
    assert set(rows) == {"onehot", "label_embedding"}
    # What compare prints: the score as the task names it, and no calibration (text runs have none).
    short = write_comparison(tmp_path / "ddtp-summarize").short.splitlines()
    assert short[0] == "| method | seeds | test ROUGE-L (selected) | p vs onehot |" and len(short) == 6


# ---------------------------------------------------------------- what a text run refuses


@pytest.mark.parametrize(
    ("method", "reason"),
    [("lwr", "per-example state"), ("ols", "m x m matrix of class statistics"), ("lwal", "10 x m")],
)
def test_methods_that_cannot_learn_tokens_say_why(method, reason):
    with pytest.raises(ConfigError, match=reason):
        load_config(CONFIGS / "ddtp-en-it.yaml", [f"method.name={method}"])


def test_text_data_and_image_models_do_not_mix():
    with pytest.raises(ConfigError, match="needs model.name=seq2seq"):
        build_config({"data": {"name": "ddtp-en-it"}, "model": {"name": "mlp"}})
    with pytest.raises(ConfigError, match="needs a text corpus"):
        build_config({"model": {"name": "seq2seq"}})
    with pytest.raises(ConfigError, match="are for images"):
        load_config(CONFIGS / "ddtp-en-it.yaml", ["data.augment.flip=true"])


def test_each_method_gets_its_own_options_from_the_methods_section():
    config = load_config(CONFIGS / "ddtp-en-it.yaml")
    assert config.options("method") == {"variant": "nlp", "soft_warmup": 0.4}
    assert config.with_method("onehot").options("method") == {}
    assert config.with_method("label_smoothing").options("method") == {"epsilon": 0.1}
    with pytest.raises(ConfigError, match="did you mean 'label_smoothing'"):
        load_config(CONFIGS / "ddtp-en-it.yaml", ["methods.label_smothing.epsilon=0.2"])


# ---------------------------------------------------------------- quick-run keys on images


def test_max_steps_and_max_train_pairs_on_an_image_config(small_config):
    summary = train(small_config("train.max_steps=4", "data.max_train_pairs=250"))
    assert summary["steps"] == 4  # batches of 100, 100, 50, then 100 of the second epoch
    assert summary["epochs_trained"] == pytest.approx(350 / 250)


def test_gradient_clipping_is_applied(small_config, monkeypatch):
    import labelemb.training.single as single

    seen = []
    clip = torch.nn.utils.clip_grad_norm_

    def recording(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        before = clip(parameters, max_norm, *args, **kwargs)
        after = torch.linalg.vector_norm(
            torch.stack([p.grad.norm() for p in parameters if p.grad is not None])
        )
        seen.append((max_norm, float(before), float(after)))
        return before

    monkeypatch.setattr(single.nn.utils, "clip_grad_norm_", recording)
    train(small_config("train.clip_grad_norm=0.01", "train.max_steps=2"))
    assert len(seen) == 2
    for max_norm, before, after in seen:
        assert max_norm == 0.01 and before > 0.01
        assert after == pytest.approx(0.01, rel=1e-4)


def test_special_tokens_frame_every_target():
    split = pairs(["a"], ["x y"])
    target = vocabulary("x y z")
    assert split.target[0].tolist() == [
        target.index[BOS],
        target.index["x"],
        target.index["y"],
        target.index[EOS],
    ]
    assert target.index[PAD] == 0
