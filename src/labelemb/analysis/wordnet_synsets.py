"""Which WordNet noun synset each class of a data set stands for, and why.

:data:`SYNSETS` maps the classes of Fashion-MNIST (8 of 10), CIFAR-10 (10 of 10) and CIFAR-100
(100 of 100) to synsets, with the reason for each choice that is not the obvious first sense;
:data:`UNMAPPED` lists the classes left out and why. :func:`mapped_synsets` picks the mappable
classes of a list of class names. Plain data: no NLTK needed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["SYNSETS", "UNMAPPED", "mapped_synsets"]

# ------------------------------------------------------------------------- class -> synset maps
#
# Each value is the synset's canonical NLTK name (``wn.synset(name).name() == name``), so where
# WordNet files a class under another head word the name shows it (automobile -> car.n.01).
# Rule: the first noun sense whose meaning is what the class's images show; a later sense only
# where the first one means something else (a fur, a food, a person, a piece of wood, ...).

SYNSETS: dict[str, dict[str, str]] = {
    # The 8 classes LwAL mapped (their released code, utils/constants.py FMNIST_MAPPABLE_LABELS,
    # looked up as "<label>.n.01"). Not mapped: see UNMAPPED.
    "fashion-mnist": {
        "Trouser": "trouser.n.01",  # "a garment extending from the waist to the knee or ankle"
        "Pullover": "pullover.n.01",  # "a sweater that is put on by pulling it over the head"
        "Dress": "dress.n.01",  # "a one-piece garment for a woman; has skirt and bodice"
        "Coat": "coat.n.01",  # "an outer garment that has sleeves ...; worn outdoors"
        "Sandal": "sandal.n.01",  # "a shoe consisting of a sole fastened by straps to the foot"
        "Shirt": "shirt.n.01",  # "a garment worn on the upper half of the body"
        "Sneaker": "gym_shoe.n.01",  # = sneaker.n.01 (lemmas gym_shoe, sneaker, tennis_shoe)
        # The images are handbags: bag.n.04 "a container used for carrying money and small
        # personal items". LwAL's lookup gave bag.n.01 "a flexible container with a single
        # opening"; both hang directly under container.n.01, so every distance is the same.
        "Bag": "bag.n.04",
    },
    # All ten, as LwAL's "<label>.n.01" (automobile.n.01 is the synset car.n.01).
    "cifar10": {
        "airplane": "airplane.n.01",
        "automobile": "car.n.01",
        "bird": "bird.n.01",
        "cat": "cat.n.01",
        "deer": "deer.n.01",
        "dog": "dog.n.01",
        "frog": "frog.n.01",
        "horse": "horse.n.01",
        "ship": "ship.n.01",
        "truck": "truck.n.01",
    },
    # All 100 fine labels, in the order of CIFAR-100's meta file.
    "cifar100": {
        "apple": "apple.n.01",  # the fruit (noun.food; also under fruit.n.01), not the tree (n.02)
        # No WordNet entry for "aquarium fish" (a role, not a taxon; the images are many kinds of
        # ornamental fish), so the generic fish.n.01; a species (goldfish) would be a guess.
        "aquarium_fish": "fish.n.01",
        "baby": "baby.n.01",
        "bear": "bear.n.01",
        "beaver": "beaver.n.07",  # the rodent; n.01 is its fur
        "bed": "bed.n.01",
        "bee": "bee.n.01",
        "beetle": "beetle.n.01",
        "bicycle": "bicycle.n.01",
        "bottle": "bottle.n.01",
        "bowl": "bowl.n.01",  # "a round vessel that is open at the top; used chiefly for food"
        "boy": "male_child.n.01",  # first sense of "boy": "a youthful male person"
        "bridge": "bridge.n.01",
        "bus": "bus.n.01",
        "butterfly": "butterfly.n.01",
        "camel": "camel.n.01",
        "can": "can.n.01",
        "castle": "castle.n.02",  # the fortified building; n.01 (palace.n.01) is "a stately mansion"
        "caterpillar": "caterpillar.n.01",  # the larva; n.02 is the tracked vehicle
        "cattle": "cattle.n.01",
        "chair": "chair.n.01",
        "chimpanzee": "chimpanzee.n.01",
        "clock": "clock.n.01",
        "cloud": "cloud.n.02",  # "a visible mass of water or ice particles"; n.01 is smoke or dust
        "cockroach": "cockroach.n.01",
        "couch": "sofa.n.01",  # first sense of "couch"
        "crab": "crab.n.01",
        "crocodile": "crocodile.n.01",
        "cup": "cup.n.01",
        "dinosaur": "dinosaur.n.01",
        "dolphin": "dolphin.n.02",  # the toothed whale; the first sense is the dolphinfish
        "elephant": "elephant.n.01",
        "flatfish": "flatfish.n.02",  # the fish; n.01 is its flesh as food
        # The scene: "land that is covered with trees and shrubs" (under land.n.04, like plain);
        # n.01 is the trees themselves as a group.
        "forest": "forest.n.02",
        "fox": "fox.n.01",
        "girl": "female_child.n.01",  # "a youthful female person", like boy; girl.n.01 is "a young woman"
        "hamster": "hamster.n.01",
        "house": "house.n.01",
        "kangaroo": "kangaroo.n.01",
        # A household electrical device in CIFAR-100's superclasses: the computer keyboard (a
        # hyponym of keyboard.n.01 and of data_input_device.n.01).
        "keyboard": "computer_keyboard.n.01",
        # Table and desk lamps: WordNet files table_lamp and floor_lamp under lamp.n.02 ("a piece
        # of furniture holding one or more electric light bulbs"); n.01 is any light source.
        "lamp": "lamp.n.02",
        "lawn_mower": "lawn_mower.n.01",
        "leopard": "leopard.n.02",  # the cat; n.01 is its pelt
        "lion": "lion.n.01",
        "lizard": "lizard.n.01",
        "lobster": "lobster.n.02",  # the animal; n.01 is its flesh
        "man": "man.n.01",  # "an adult person who is male"
        "maple_tree": "maple.n.02",  # the tree; n.01 is its wood
        "motorcycle": "motorcycle.n.01",
        "mountain": "mountain.n.01",
        "mouse": "mouse.n.01",  # the rodent, not the computer mouse (n.04)
        "mushroom": "mushroom.n.01",  # "common name for an edible agaric" (the fungus as it grows)
        "oak_tree": "oak.n.02",  # the tree; n.01 is its wood
        "orange": "orange.n.01",  # the fruit
        "orchid": "orchid.n.01",
        "otter": "otter.n.02",  # the animal; n.01 is its fur
        "palm_tree": "palm.n.03",  # the tree; n.01 is the palm of the hand
        "pear": "pear.n.01",  # the fruit
        "pickup_truck": "pickup.n.01",  # "a light truck with an open body and low sides"
        "pine_tree": "pine.n.01",
        "plain": "plain.n.01",
        "plate": "plate.n.04",  # "dish on which food is served"; n.01 is baseball's home plate
        "poppy": "poppy.n.01",
        "porcupine": "porcupine.n.01",
        "possum": "opossum.n.02",  # first sense of "possum": the American opossum
        "rabbit": "rabbit.n.01",
        "raccoon": "raccoon.n.02",  # the animal; n.01 is its fur
        "ray": "ray.n.07",  # the flat cartilaginous fish; the first senses are beams of light
        "road": "road.n.01",
        "rocket": "rocket.n.01",  # "any vehicle self-propelled by a rocket engine"
        "rose": "rose.n.01",
        "sea": "sea.n.01",
        "seal": "seal.n.09",  # the marine mammal; the first senses are sealing wax, stamps, ...
        "shark": "shark.n.01",
        "shrew": "shrew.n.02",  # the animal; n.01 is "a scolding nagging bad-tempered woman"
        "skunk": "skunk.n.04",  # the animal; the first senses are a person, a shutout, marijuana
        "skyscraper": "skyscraper.n.01",
        "snail": "snail.n.01",
        "snake": "snake.n.01",
        "spider": "spider.n.01",
        "squirrel": "squirrel.n.01",
        "streetcar": "streetcar.n.01",
        "sunflower": "sunflower.n.01",
        "sweet_pepper": "sweet_pepper.n.02",  # the pepper itself; n.01 is the plant bearing it
        "table": "table.n.02",  # the furniture; n.01 is a table of data
        "tank": "tank.n.01",  # the armoured vehicle (CIFAR-100 "vehicles 2"), not a container
        "telephone": "telephone.n.01",
        "television": "television_receiver.n.01",  # the set; television.n.01 is broadcasting
        "tiger": "tiger.n.02",  # the cat; n.01 is "a fierce or audacious person"
        "tractor": "tractor.n.01",  # the farm vehicle; n.02 is a truck's tractor unit
        "train": "train.n.01",
        "trout": "trout.n.02",  # the fish; n.01 is its flesh as food
        "tulip": "tulip.n.01",
        "turtle": "turtle.n.02",  # the reptile; the first sense of "turtle" is turtleneck.n.01
        "wardrobe": "wardrobe.n.01",
        "whale": "whale.n.02",  # the cetacean; the first sense is a very large person
        "willow_tree": "willow.n.01",
        "wolf": "wolf.n.01",
        "woman": "woman.n.01",  # "an adult female person"
        "worm": "worm.n.01",
    },
}

#: Classes with no WordNet synset of their own, and why. They are left out of the correlation.
UNMAPPED: dict[str, dict[str, str]] = {
    "fashion-mnist": {
        # LwAL left out the same two (8 of 10 mappable).
        "T-shirt/top": "one class for two concepts, the tee shirt (jersey.n.03) and a woman's top (top.n.10)",
        "Ankle boot": "no WordNet 3.0 entry; boot.n.01 covers every boot",
    },
    "cifar10": {},
    "cifar100": {},
}

_DATASET_ALIASES = {"fashionmnist": "fashion-mnist", "cifar10": "cifar10", "cifar100": "cifar100"}


def _dataset_key(dataset: str) -> str:
    key = _DATASET_ALIASES.get(re.sub(r"[^a-z0-9]", "", dataset.lower()))
    if key is None:
        raise ValueError(f"no WordNet mapping for dataset {dataset!r}; known: {', '.join(SYNSETS)}")
    return key


def _norm(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def mapped_synsets(class_names: Sequence[str], dataset: str | Mapping[str, str]) -> dict[str, str]:
    """The mappable classes of ``class_names``, in their order, with their synset names.

    ``dataset`` is a dataset name (``"fashion-mnist"``, ``"cifar10"``, ``"cifar100"``; case,
    ``-`` and ``_`` do not matter) or a mapping class name -> synset name of your own. Class names
    match ignoring case and with spaces read as underscores. For a named dataset, a class that is
    neither mapped nor listed in :data:`UNMAPPED` is an error (a wrong dataset or a typo); with
    your own mapping, classes missing from it are left out.
    """
    if isinstance(dataset, Mapping):
        table, unmapped, title = dict(dataset), None, "the given mapping"
    else:
        key = _dataset_key(dataset)
        table, unmapped, title = SYNSETS[key], UNMAPPED[key], key
    lookup = {_norm(k): v for k, v in table.items()}
    skipped = {_norm(k) for k in unmapped} if unmapped is not None else None
    kept: dict[str, str] = {}
    unknown = []
    for name in class_names:
        synset = lookup.get(_norm(name))
        if synset is not None:
            kept[name] = synset
        elif skipped is not None and _norm(name) not in skipped:
            unknown.append(name)
    if unknown:
        raise ValueError(f"class names not in the WordNet mapping of {title}: {unknown}")
    return kept
