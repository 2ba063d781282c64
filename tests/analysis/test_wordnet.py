"""WordNet 3.0 set-up, class -> synset mappings, and LwAL's semantic correlation (Eq. 4).

The WordNet tests need Debian's ``wordnet-base`` and ``wordnet-sense-index`` and ``pip install
nltk``; without them they fail with a message naming what to install (never skip). The
correlation arithmetic is also tested on injected distance matrices, independent of NLTK.
"""

from __future__ import annotations

import hashlib
import math
import sys

import numpy as np
import pytest
import torch

from labelemb.analysis import wordnet_corpus as W
from labelemb.analysis.wordnet import as_vectors, semantic_correlation, wordnet_distances
from labelemb.analysis.wordnet_corpus import prepare_wordnet, wordnet_reader
from labelemb.analysis.wordnet_synsets import SYNSETS, UNMAPPED, mapped_synsets
from labelemb.data.mnist import FASHION_MNIST

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# CIFAR-100's fine labels in the order of its meta file, grouped by its 20 superclasses below.
CIFAR100_NAMES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly "
    "camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup "
    "dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower "
    "leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid "
    "otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray "
    "road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar "
    "sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle "
    "wardrobe whale willow_tree wolf woman worm"
).split()

ANIMAL = "noun.animal"
ARTIFACT = "noun.artifact"
# The WordNet lexicographer file each class's synset must come from: catches a wrong sense
# (the fur, the food, a person, the wood) that still "resolves".
CIFAR100_SUPERCLASSES = {
    ANIMAL: "beaver dolphin otter seal whale aquarium_fish flatfish ray shark trout bee beetle butterfly "
    "caterpillar cockroach bear leopard lion tiger wolf camel cattle chimpanzee elephant kangaroo fox "
    "porcupine possum raccoon skunk crab lobster snail spider worm crocodile dinosaur lizard snake turtle "
    "hamster mouse rabbit shrew squirrel",
    "noun.plant": "orchid poppy rose sunflower tulip maple_tree oak_tree palm_tree pine_tree willow_tree "
    "mushroom",
    "noun.food": "apple orange pear sweet_pepper",
    "noun.person": "baby boy girl man woman",
    "noun.object": "cloud forest mountain plain sea",
    ARTIFACT: "bottle bowl can cup plate clock keyboard lamp telephone television bed chair couch table "
    "wardrobe bridge castle house road skyscraper bicycle bus motorcycle pickup_truck train lawn_mower "
    "rocket streetcar tank tractor",
}
EXPECTED_LEXNAME = {
    "fashion-mnist": dict.fromkeys(SYNSETS["fashion-mnist"], ARTIFACT),
    "cifar10": {
        name: ARTIFACT if name in ("airplane", "automobile", "ship", "truck") else ANIMAL
        for name in CIFAR10_NAMES
    },
    "cifar100": {name: lex for lex, names in CIFAR100_SUPERCLASSES.items() for name in names.split()},
}


# A hypernym each class's synset must lie under (or be): catches a wrong sense in the same
# lexicographer file, e.g. dolphin -> dolphinfish.n.02 (a fish, not a mammal).
EXPECTED_ANCESTOR_GROUPS = {
    "fashion-mnist": {
        "clothing.n.01": "Trouser Pullover Dress Coat Shirt",
        "footwear.n.02": "Sandal Sneaker",
        "container.n.01": "Bag",
    },
    "cifar10": {
        "vehicle.n.01": "airplane automobile ship truck",
        "bird.n.01": "bird",
        "mammal.n.01": "cat deer dog horse",
        "amphibian.n.03": "frog",
    },
    "cifar100": {
        "mammal.n.01": "beaver dolphin otter seal whale camel cattle chimpanzee elephant kangaroo fox "
        "porcupine possum raccoon skunk hamster mouse rabbit shrew squirrel",
        "carnivore.n.01": "bear leopard lion tiger wolf",
        "fish.n.01": "aquarium_fish flatfish ray shark trout",
        "insect.n.01": "bee beetle butterfly cockroach",
        "larva.n.01": "caterpillar",
        "invertebrate.n.01": "crab lobster snail spider worm",
        "reptile.n.01": "crocodile dinosaur lizard snake turtle",
        "person.n.01": "baby boy girl man woman",
        "tree.n.01": "maple_tree oak_tree palm_tree pine_tree willow_tree",
        "vascular_plant.n.01": "orchid poppy rose sunflower tulip",
        "fungus.n.01": "mushroom",
        "edible_fruit.n.01": "apple orange pear",
        "vegetable.n.01": "sweet_pepper",
        "container.n.01": "bottle bowl can cup",
        "tableware.n.01": "plate",
        "furniture.n.01": "bed chair couch table wardrobe lamp",
        "timepiece.n.01": "clock",
        "electronic_equipment.n.01": "keyboard telephone television",
        "structure.n.01": "bridge castle house skyscraper",
        "way.n.06": "road",
        "atmospheric_phenomenon.n.01": "cloud",
        "land.n.04": "forest plain",
        "geological_formation.n.01": "mountain",
        "body_of_water.n.01": "sea",
        "conveyance.n.03": "bicycle bus motorcycle pickup_truck train rocket streetcar tank tractor",
        "garden_tool.n.01": "lawn_mower",
    },
}
EXPECTED_ANCESTOR = {
    dataset: {name: ancestor for ancestor, names in groups.items() for name in names.split()}
    for dataset, groups in EXPECTED_ANCESTOR_GROUPS.items()
}


@pytest.fixture(scope="module")
def nltk_folder(tmp_path_factory):
    """WordNet 3.0 from the Debian packages, prepared once for this module."""
    return prepare_wordnet(tmp_path_factory.mktemp("nltk_data"))


@pytest.fixture(scope="module")
def wn(nltk_folder):
    return wordnet_reader(nltk_folder)


def _fake_source(folder):
    """A stand-in for /usr/share/wordnet: every expected file (tiny), plus a folder to skip."""
    folder.mkdir(parents=True)
    for name in (*W.BASE_FILES, *W.SENSE_INDEX_FILES):
        (folder / name).write_text(f"contents of {name}\n")
    (folder / "bin").mkdir()
    (folder / "bin" / "wnb").write_text("not WordNet data")
    return folder


# ----------------------------------------------------------------------------- the data folder


def test_packaged_lexnames_is_the_princeton_table():
    data = W._lexnames_bytes()
    assert hashlib.md5(data).hexdigest() == "d38d0a0ac8b6fa74c62ddde441f16cd9"
    rows = [line.split("\t") for line in data.decode().splitlines()]
    assert len(rows) == 45
    assert [int(r[0]) for r in rows] == list(range(45))
    assert rows[3] == ["03", "noun.Tops", "1"] and rows[44] == ["44", "adj.ppl", "3"]


def test_prepare_copies_real_files_into_the_xdg_cache(tmp_path, monkeypatch):
    source = _fake_source(tmp_path / "src")
    # A linked file in the source must still arrive as a real file.
    (source / "verb.exc").unlink()
    (tmp_path / "elsewhere.exc").write_text("linked\n")
    (source / "verb.exc").symlink_to(tmp_path / "elsewhere.exc")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    folder = prepare_wordnet(source=source)

    assert folder == tmp_path / "cache" / "labelemb" / "nltk_data"
    corpus = folder / "corpora" / "wordnet"
    for name in (*W.BASE_FILES, *W.SENSE_INDEX_FILES, "lexnames"):
        assert (corpus / name).is_file() and not (corpus / name).is_symlink(), name
    assert (corpus / "verb.exc").read_text() == "linked\n"
    assert (corpus / "lexnames").read_bytes() == W._lexnames_bytes()
    assert not (corpus / "bin").exists()
    # Only the finished corpus (and the builders' lock file) is left: no temporary folders.
    assert sorted(p.name for p in (folder / "corpora").iterdir()) == [".wordnet.lock", "wordnet"]


def test_prepare_is_idempotent_and_redoes_a_changed_or_broken_copy(tmp_path, monkeypatch):
    source = _fake_source(tmp_path / "src")
    folder = prepare_wordnet(tmp_path / "data", source)
    corpus = folder / "corpora" / "wordnet"

    def no_copy(*args, **kwargs):
        raise AssertionError("a complete copy was copied again")

    with monkeypatch.context() as m:
        m.setattr(W.shutil, "copyfile", no_copy)
        assert prepare_wordnet(tmp_path / "data", source) == folder
        # Source gone (packages removed): the finished copy is still used.
        assert prepare_wordnet(tmp_path / "data", tmp_path / "nowhere") == folder

    (corpus / "data.noun").write_text("truncated")  # a damaged copy is rebuilt
    prepare_wordnet(tmp_path / "data", source)
    assert (corpus / "data.noun").read_text() == "contents of data.noun\n"

    (source / "index.noun").write_text("a newer Debian release\n")  # a changed source is copied again
    prepare_wordnet(tmp_path / "data", source)
    assert (corpus / "index.noun").read_text() == "a newer Debian release\n"


def test_prepare_names_the_debian_packages_when_wordnet_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install wordnet-base wordnet-sense-index"):
        prepare_wordnet(tmp_path / "data", tmp_path / "no-such-dir")

    source = _fake_source(tmp_path / "src")
    (source / "index.sense").unlink()  # wordnet-base without wordnet-sense-index
    with pytest.raises(FileNotFoundError, match=r"wordnet-sense-index \(missing index.sense\)") as err:
        prepare_wordnet(tmp_path / "data", source)
    assert "apt-get install wordnet-base wordnet-sense-index" in str(err.value)
    assert not (tmp_path / "data" / "corpora" / "wordnet").exists()


def test_prepared_debian_wordnet_is_complete(nltk_folder):
    corpus = nltk_folder / "corpora" / "wordnet"
    # Synset records are the data-file lines that do not start with the licence's spaces.
    count = 0
    for pos in ("noun", "verb", "adj", "adv"):
        with open(corpus / f"data.{pos}", "rb") as f:
            count += sum(1 for line in f if not line.startswith(b" "))
    assert count == 117_659
    assert (corpus / "lexnames").read_bytes() == W._lexnames_bytes()


def test_reader_reads_wordnet_3_0(wn, nltk_folder):
    assert wn.get_version() == "3.0"
    dog, cat = wn.synset("dog.n.01"), wn.synset("cat.n.01")
    assert dog.offset() == 2084071 and cat.offset() == 2121620
    assert dog.shortest_path_distance(cat) == 4
    assert dog.lowest_common_hypernyms(cat)[0].name() == "carnivore.n.01"
    assert wn.lemma_from_key("dog%1:05:00::").synset() == dog  # index.sense was copied
    assert wordnet_reader(nltk_folder) is wn  # one reader per folder


def test_reader_without_nltk_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "nltk", None)
    with pytest.raises(ImportError, match=r'pip install "labelemb\[wordnet\]"'):
        wordnet_reader(tmp_path)


# ----------------------------------------------------------------------------- the mappings


def test_mappings_cover_the_datasets_class_names():
    fashion = list(FASHION_MNIST.class_names)
    assert sorted([*SYNSETS["fashion-mnist"], *UNMAPPED["fashion-mnist"]]) == sorted(fashion)
    assert list(SYNSETS["cifar10"]) == CIFAR10_NAMES
    assert list(SYNSETS["cifar100"]) == CIFAR100_NAMES
    assert set(UNMAPPED["fashion-mnist"]) == {"T-shirt/top", "Ankle boot"}
    assert (len(SYNSETS["fashion-mnist"]), len(SYNSETS["cifar10"]), len(SYNSETS["cifar100"])) == (8, 10, 100)
    for dataset, table in SYNSETS.items():  # the expectations below cover every class once
        assert sorted(EXPECTED_LEXNAME[dataset]) == sorted(table) == sorted(EXPECTED_ANCESTOR[dataset])
        groups = EXPECTED_ANCESTOR_GROUPS[dataset].values()
        assert sum(len(g.split()) for g in groups) == len(table)
    for table in SYNSETS.values():
        assert len(set(table.values())) == len(table), "two classes share a synset"


@pytest.mark.parametrize("dataset", sorted(SYNSETS))
def test_every_mapping_is_a_wordnet_noun_with_the_intended_meaning(wn, dataset):
    for name, synset_name in SYNSETS[dataset].items():
        synset = wn.synset(synset_name)
        assert synset.name() == synset_name, f"{name}: {synset_name} is filed as {synset.name()}"
        assert synset.pos() == "n"
        assert synset.lexname() == EXPECTED_LEXNAME[dataset][name], (name, synset.definition())
        ancestors = set(synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms()))
        expected = wn.synset(EXPECTED_ANCESTOR[dataset][name])
        assert expected in ancestors | {synset}, (name, synset.definition())


def test_mapped_synsets_keeps_order_and_rejects_unknown_names():
    kept = mapped_synsets(list(FASHION_MNIST.class_names), "Fashion_MNIST")
    assert list(kept) == ["Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag"]
    assert mapped_synsets(["ankle_boot", "trouser"], "fashion-mnist") == {"trouser": "trouser.n.01"}
    assert list(mapped_synsets(CIFAR10_NAMES[::-1], "CIFAR-10")) == CIFAR10_NAMES[::-1]
    with pytest.raises(ValueError, match="zebra"):
        mapped_synsets(["cat", "zebra"], "cifar10")
    with pytest.raises(ValueError, match="known: fashion-mnist, cifar10, cifar100"):
        mapped_synsets(["cat"], "imagenet")
    assert mapped_synsets(["cat", "zebra"], {"cat": "cat.n.01"}) == {"cat": "cat.n.01"}


def test_wordnet_distances(wn):
    names, dist = wordnet_distances(list(FASHION_MNIST.class_names), "fashion-mnist", reader=wn)
    assert names == list(SYNSETS["fashion-mnist"])
    assert dist.shape == (8, 8)
    names, dist = wordnet_distances(CIFAR10_NAMES, "cifar10", reader=wn)
    assert names == CIFAR10_NAMES
    np.testing.assert_array_equal(dist, dist.T)
    np.testing.assert_array_equal(np.diag(dist), 0)
    off = dist[~np.eye(10, dtype=bool)]
    assert (off >= 1).all() and (off == np.round(off)).all()
    assert dist[3, 5] == 4  # cat - dog
    assert dist[1, 9] == 2  # car - truck: both motor vehicles
    names, dist = wordnet_distances(CIFAR100_NAMES, "cifar100", reader=wn)
    assert dist.shape == (100, 100) and np.isfinite(dist).all()


# ----------------------------------------------------------------------------- the correlation

# A made-up WordNet: 4 classes, and a representation's distances (used as given).
REF4 = [[0, 1, 2, 3], [1, 0, 2, 3], [2, 2, 0, 1], [3, 3, 1, 0]]
REP4 = [[0, 1, 3, 2], [1, 0, 2, 2], [3, 2, 0, 1], [2, 2, 1, 0]]


def test_tau_b_by_hand():
    out = semantic_correlation(torch.tensor(REP4), list("abcd"), None, "precomputed", reference=REF4)
    # tau_b = (C - D) / sqrt((n0 - t_x)(n0 - t_y)) over the 3 pairs of each row's 3 other classes:
    # a: (1,2,3) vs (1,3,2): C=2, D=1             -> 1/3
    # b: (1,2,3) vs (1,2,2): C=2, D=0, t_y=1      -> 2/sqrt(3*2)
    # c: (2,2,1) vs (3,2,1): C=2, D=0, t_x=1      -> 2/sqrt(2*3)
    # d: (3,3,1) vs (2,2,1): C=2, D=0, t_x=t_y=1  -> 2/sqrt(2*2) = 1
    expected = {"a": 1 / 3, "b": 2 / math.sqrt(6), "c": 2 / math.sqrt(6), "d": 1.0}
    assert out["per_class"] == pytest.approx(expected)
    assert out["mean_tau"] == pytest.approx(sum(expected.values()) / 4)
    assert out["classes"] == list("abcd")
    assert out["wordnet_distances"] == REF4 and out["representation_distances"] == REP4
    assert out["excluded"] == [] and out["note"] == ""


def test_undefined_tau_is_nan_and_left_out_of_the_mean():
    rep = [row[:] for row in REP4]
    rep[3] = [5.0, 5.0, 5.0, 0.0]  # class d sees every other class at the same distance
    out = semantic_correlation(np.array(rep), list("abcd"), None, metric="precomputed", reference=REF4)
    assert math.isnan(out["per_class"]["d"])
    assert out["excluded"] == ["d"] and "d" in out["note"]
    assert out["mean_tau"] == pytest.approx((1 / 3 + 4 / math.sqrt(6)) / 3)


def _tree():
    """Six leaves of a made-up hierarchy, their path distances, and vectors that realise them.

    A leaf's vector is the indicator of the edges on its path from the root; the squared
    Euclidean distance between two leaves is then the number of edges between them.
    """
    parents = {"animal": "root", "vehicle": "root", "cat": "feline", "lion": "feline", "feline": "animal"}
    parents |= {"dog": "animal", "car": "vehicle", "truck": "motor", "bus": "motor", "motor": "vehicle"}
    leaves = ["cat", "lion", "dog", "car", "truck", "bus"]
    edges = sorted(parents)

    def path(node):
        return [node, *path(parents[node])] if node in parents else []

    vectors = torch.tensor([[float(e in path(leaf)) for e in edges] for leaf in leaves])
    ref = np.array([[len(set(path(a)) ^ set(path(b))) for b in leaves] for a in leaves], dtype=float)
    return leaves, ref, vectors


def test_monotone_representation_gives_one_and_reversed_gives_minus_one():
    leaves, ref, vectors = _tree()
    out = semantic_correlation(vectors, leaves, None, reference=ref)  # Euclidean = sqrt(tree distance)
    np.testing.assert_allclose(np.array(out["representation_distances"]) ** 2, ref, atol=1e-12)
    assert out["per_class"] == pytest.approx(dict.fromkeys(leaves, 1.0))
    assert out["mean_tau"] == pytest.approx(1)

    reversed_dist = torch.tensor(ref.max() + 1 - ref).fill_diagonal_(0)
    out = semantic_correlation(reversed_dist, leaves, None, "precomputed", reference=ref)
    assert out["per_class"] == pytest.approx(dict.fromkeys(leaves, -1.0))
    assert out["mean_tau"] == pytest.approx(-1)

    cosine = semantic_correlation(vectors, leaves, None, "cosine", reference=ref)
    assert cosine["metric"] == "cosine" and -1 <= cosine["mean_tau"] <= 1


def test_correlation_with_real_wordnet(wn):
    _, dist = wordnet_distances(CIFAR10_NAMES, "cifar10", reader=wn)
    out = semantic_correlation(torch.tensor(dist) ** 2, CIFAR10_NAMES, "cifar10", "precomputed", reader=wn)
    assert out["per_class"] == pytest.approx(dict.fromkeys(CIFAR10_NAMES, 1.0))
    assert out["mean_tau"] == pytest.approx(1)
    out = semantic_correlation(torch.tensor(-dist), CIFAR10_NAMES, "cifar10", "precomputed", reader=wn)
    assert out["mean_tau"] == pytest.approx(-1)


def test_only_mappable_classes_take_part(wn):
    names = list(FASHION_MNIST.class_names)
    rep = torch.randn(10, 5, generator=torch.Generator().manual_seed(0))
    out = semantic_correlation(rep, names, "fashion-mnist", reader=wn)
    kept = [1, 2, 3, 4, 5, 6, 7, 8]  # all but T-shirt/top (0) and Ankle boot (9)
    assert out["classes"] == [names[i] for i in kept] and set(out["per_class"]) == set(out["classes"])
    expected = torch.cdist(rep[kept].double(), rep[kept].double())
    np.testing.assert_allclose(out["representation_distances"], expected.numpy(), atol=1e-12)
    _, reference = wordnet_distances(names, "fashion-mnist", reader=wn)
    np.testing.assert_array_equal(out["wordnet_distances"], reference)
    assert -1 <= out["mean_tau"] <= 1


def test_correlation_checks_its_inputs():
    with pytest.raises(ValueError, match="4 class names"):
        semantic_correlation(torch.zeros(3, 2), list("abcd"), None, reference=REF4)
    with pytest.raises(ValueError, match="reference must be"):
        semantic_correlation(torch.zeros(4, 2), list("abcd"), None, reference=[[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="unknown metric"):
        semantic_correlation(torch.zeros(4, 2), list("abcd"), None, "manhattan", reference=REF4)
    with pytest.raises(ValueError, match="at least 3"):
        semantic_correlation(torch.zeros(2, 2), list("ab"), None, reference=[[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="give a dataset"):
        semantic_correlation(torch.zeros(4, 2), list("abcd"), None)


def test_as_vectors_recovers_the_geometry_of_a_gram_matrix():
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    vectors = as_vectors(x @ x.T)
    assert vectors.shape == (6, 6) and vectors.dtype == torch.float64
    torch.testing.assert_close(torch.cdist(vectors, vectors), torch.cdist(x, x))

    skew = torch.randn(6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    skew = skew - skew.T
    torch.testing.assert_close(as_vectors(x @ x.T + skew), vectors)  # only the symmetric part counts

    indefinite = torch.tensor([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3 and -1
    v = as_vectors(indefinite)
    assert torch.isfinite(v).all()
    torch.testing.assert_close(v @ v.T, torch.full((2, 2), 1.5, dtype=torch.float64))  # the PSD part
