"""Named world suites for ``autoworld bench --worlds suite:NAME``: fixed lists, so a grid
filled over several calls (or compared across machines) always means the same worlds.

``core36``: the 36-world grid of the leaderboard target (AutoEnv compares methods over 36
environments). The 16 hand-written grid worlds, then 20 of the 40 generated ones, picked one at a
time from the taxonomy class (reward x observation x semantics x dynamics) with the fewest
members so far, ties by name. The result holds 15 of the 16 classes (the catalogue has no
cumulative / partial / inverse / stochastic world), 1 to 3 worlds each: 18 binary and 18
cumulative, 20 partial, 14 inverse, 14 stochastic.
"""

from __future__ import annotations

SUITES: dict[str, tuple[str, ...]] = {
    "core36": (
        # hand-written
        "Checkpoints-9x9", "CoinMaze-11x11", "CrumblingBridge-9x9", "DoorKey-8x8", "Empty-6x6",
        "FoggyRooms-11x11", "IceRink-9x9", "InverseLava-8x8", "MirrorLava-9x9", "NoisyMaze-9x9",
        "SlipperyDeceptive-7x7", "SlipperyLava-9x9", "Sokoban-7x7", "TeleportMaze-9x9",
        "TorusCoverage-7x7", "WindyCoins-9x9",
        # generated, balancing the taxonomy classes
        "BackwardsRace-48115a-6x6", "DeceptiveWindyTreasure-0c5dac-7x7",
        "FlickeringTunnel-e8f42f-8x8", "FrozenLakeWith-90613d-6x6", "IcyMaze-fcfa1d-9x9",
        "IllusionGoal-33e4c0-6x6", "MirrorWorld-ead326-6x6", "BlindRobotCollects-80bc0f-6x6",
        "CoinsTheDark-3b924d-8x8", "CrumblingBridgeOver-7520d0-8x8",
        "InvertedLavaLake-15719a-10x10", "ScrambledControlsDungeon-95e693-11x11",
        "SlipperyDungeon-bdc459-9x9", "TrickCoinsAnd-c14189-7x7",
        "CheckpointRaceThrough-e9115a-8x7", "GlacierCrossing-2b1074-11x11",
        "LavaFieldNight-72eabe-6x6", "OppositeWorldWith-107dde-6x6",
        "TreasureHuntMisty-a4d1b1-8x8", "WindyArena-1233c3-8x7",
    ),
}
