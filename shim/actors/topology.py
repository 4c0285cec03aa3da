"""TopologyActor: on :class:`~shim.messages.DiscoverTopology`, discovers the machine and tells
its subscribers.

Discovery itself (sysfs walk or a topology file) is the injected ``discover`` callable, so the
actor stays sans-IO and tests hand it a fixed :class:`~shim.topology.Topology`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shim.actors.base import Envelope
from shim.messages import DiscoverTopology, Message, TopologyDiscovered, TopologyFailed, TopologyWire
from shim.topology import Topology, TopologyError

NAME = "topology"


class TopologyActor:
    """Sends the discovered topology (or why discovery failed) to every subscriber, in order."""

    def __init__(
        self, discover: Callable[[], Topology], *, subscribers: Sequence[str] = ("arbiter",), name: str = NAME
    ) -> None:
        self._discover = discover
        self._subscribers = tuple(subscribers)
        self._name = name
        self.topology: Topology | None = None

    @property
    def name(self) -> str:
        return self._name

    def handle(self, message: Message) -> list[Envelope]:
        if not isinstance(message, DiscoverTopology):
            raise TypeError(f"{self._name} cannot handle {type(message).__name__}")
        outcome: Message
        try:
            topology = self._discover()
        except (TopologyError, OSError) as err:
            outcome = TopologyFailed(message=str(err))
        else:
            self.topology = topology
            outcome = TopologyDiscovered(topology=TopologyWire.from_topology(topology))
        return [Envelope(to=subscriber, message=outcome) for subscriber in self._subscribers]
